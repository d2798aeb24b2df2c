/* Test-only device allocation failures (fault.h). */
#include "fault.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_long count, fail_at = -1, failures;

int pkv_fault_device_alloc(void)
{
    long at = atomic_load(&fail_at);
    if (at < 0) { /* first use: the environment's setting */
        const char *env = getenv("PKV_TEST_FAIL_DEVICE_ALLOC");
        long want = env ? atol(env) : 0;
        long expected = -1;
        atomic_compare_exchange_strong(&fail_at, &expected, want > 0 ? want : 0);
        at = atomic_load(&fail_at);
    }
    long n = atomic_fetch_add(&count, 1) + 1;
    if (at > 0 && n == at) {
        atomic_fetch_add(&failures, 1);
        return 1;
    }
    return 0;
}

long pkv_fault_device_count(void) { return atomic_load(&count); }
void pkv_fault_device_fail_at(long at) { atomic_store(&fail_at, at > 0 ? at : 0); }
long pkv_fault_device_failures(void) { return atomic_load(&failures); }
