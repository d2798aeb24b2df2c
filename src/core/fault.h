/* Test-only device allocation failures (tests/test_alloc.c, PKV_ALLOC_KIND=device): each GPU backend
 * asks pkv_fault_device_alloc() before each device memory allocation and fails it as out of device
 * memory when it says so. Costs one atomic increment per allocation otherwise. */
#ifndef PKV_FAULT_H
#define PKV_FAULT_H

/* 1 when this device allocation must fail. Counts every call. */
int pkv_fault_device_alloc(void);
/* Device allocations asked about so far (process-wide). */
long pkv_fault_device_count(void);
/* The device allocation with count `at` (1-based, as pkv_fault_device_count will say after it) fails;
 * 0: none. Also set from the environment: PKV_TEST_FAIL_DEVICE_ALLOC=N at the first allocation. */
void pkv_fault_device_fail_at(long at);
/* Failures handed out so far. */
long pkv_fault_device_failures(void);

#endif
