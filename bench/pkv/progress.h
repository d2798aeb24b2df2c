/* A one-line progress bar on stderr, drawn only when enabled (by default: stderr is a terminal);
 * with --progress into a file or pipe, one line per stage with the seconds since the start. */
#ifndef PKV_CLI_PROGRESS_H
#define PKV_CLI_PROGRESS_H

typedef struct progress_bar {
    int enabled;
    int lines;          /* stderr is not a terminal: a timestamped line per stage instead of a bar */
    double t0;          /* seconds at progress_init */
    double lo, hi;      /* the current part's share of the whole run */
    char label[64];
} progress_bar;

void progress_init(progress_bar *p, int mode); /* mode: -1 auto, 0 off, 1 on */
/* Sets the share [lo, hi] of the whole run that the next updates cover. */
void progress_part(progress_bar *p, double lo, double hi);
/* bench_progress_fn: fraction of the current part; label NULL keeps the last one. */
void progress_update(void *bar, double fraction, const char *label);
void progress_done(progress_bar *p);

#endif
