#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 30

void progress_init(progress_bar *p, int mode)
{
    memset(p, 0, sizeof *p);
    p->enabled = mode < 0 ? isatty(STDERR_FILENO) : mode;
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
    if (!p->enabled) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}
