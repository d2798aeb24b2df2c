/* PKV_PROFILE: where the host time of a call goes (a diagnosis aid, off by default).
 *
 * With PKV_PROFILE set in the environment, each pkv_context_create, pkv_cache_create, pkv_append,
 * pkv_append_layers and pkv_attention call prints one line to stderr: its wall time split into the input check and conversion ("check"), the
 * host copies into staging memory ("stage"), the time inside queue submission and the wait for the
 * device ("wait": vkQueueSubmit + vkWaitForFences, clFinish / blocking transfers; on a GPU this is
 * the device's work, on lavapipe and PoCL the kernels running on the CPU), pipeline or program
 * creation ("pipe"), and the rest ("host": planning, tables, recording commands), with the number of
 * submissions. Counters are per thread; when the variable is unset, each probe is one load and a
 * branch. */
#ifndef PKV_PROFILE_H
#define PKV_PROFILE_H

#include <stdint.h>

typedef enum pkv_prof_kind { PKV_PROF_CHECK, PKV_PROF_STAGE, PKV_PROF_WAIT, PKV_PROF_PIPE, PKV_PROF_KINDS } pkv_prof_kind;

/* 1 when PKV_PROFILE is set (read once). */
int pkv_prof_enabled(void);
/* Monotonic seconds, always (start-up split: pkv_backend.driver_ms). */
double pkv_clock_s(void);
/* Monotonic seconds, or 0 when profiling is off. */
double pkv_prof_start(void);
/* Adds the time since t0 (from pkv_prof_start) to a counter; nothing when profiling is off. */
void pkv_prof_add(pkv_prof_kind kind, double t0);
/* One more submission to the device. */
void pkv_prof_submit(void);
/* Starts a call's counters (outermost call only: nested calls add to it); returns its start time. */
double pkv_prof_begin(void);
/* Ends the call that pkv_prof_begin started: prints `what` and the split to stderr. */
void pkv_prof_end(const char *what, double t0, uint32_t layers, uint32_t tokens);

#endif
