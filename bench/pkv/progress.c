#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "timer.h"

#define BAR_WIDTH 30

void progress_init(progress_bar *p, int mode)
{
    memset(p, 0, sizeof *p);
    p->enabled = mode < 0 ? isatty(STDERR_FILENO) : mode;
    p->lines = p->enabled && !isatty(STDERR_FILENO); /* --progress into a file: one line per stage */
    p->t0 = cli_now();
    p->hi = 1;
}

void progress_part(progress_bar *p, double lo, double hi)
{
    p->lo = lo;
    p->hi = hi;
}

void progress_update(void *bar, double fraction, const char *label)
{
    progress_bar *p = bar;
    if (!p || !p->enabled) return;
    if (p->lines) { /* a line per new label, with the seconds since the start: where a long run spends its time */
        if (label && strcmp(label, p->label) != 0) fprintf(stderr, "[%8.1f s] %s\n", cli_now() - p->t0, label);
        if (label) snprintf(p->label, sizeof p->label, "%s", label);
        return;
    }
    if (label) snprintf(p->label, sizeof p->label, "%s", label);
    double f = p->lo + (p->hi - p->lo) * (fraction < 0 ? 0 : fraction > 1 ? 1 : fraction);
    int filled = (int)(f * BAR_WIDTH + 0.5);
    char bar_text[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++) bar_text[i] = i < filled ? '#' : '.';
    bar_text[BAR_WIDTH] = 0;
    fprintf(stderr, "\r\033[K[%s] %3d%% %s", bar_text, (int)(f * 100 + 0.5), p->label);
    fflush(stderr);
}

void progress_done(progress_bar *p)
{
    if (!p->enabled || p->lines) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}
