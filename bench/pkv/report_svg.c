/* --plot FILE.svg: two panels, drawn by hand (no dependencies).
 * Left: attention error (median, log scale) against bits per element (log2 scale), one line per
 * mode through its bit widths. Right: ms per decode step against context length (both log scale),
 * one line per mode and bit width. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define W 1000
#define H 420
#define PW 400 /* panel plot area */
#define PH 300
#define PX0 80
#define PX1 580
#define PY 50

static const char *mode_colour(pkv_mode m)
{
    return m == PKV_MODE_PATTERN ? "#1f77b4" : m == PKV_MODE_DIRECT ? "#ff7f0e" : "#555555";
}

static const char *bits_dash(uint32_t b)
{
    return b == 2 ? "" : b == 3 ? "6,3" : b == 4 ? "2,2" : "8,2,2,2";
}

typedef struct axis {
    double lo, hi; /* in log10 units */
} axis;

static axis log_axis(double mn, double mx)
{
    axis a;
    if (!(mn > 0)) mn = 1e-9;
    if (!(mx > mn)) mx = mn * 10;
    a.lo = floor(log10(mn));
    a.hi = ceil(log10(mx));
    if (a.hi <= a.lo) a.hi = a.lo + 1;
    return a;
}

static double map(axis a, double v, double p0, double len)
{
    return p0 + (log10(v) - a.lo) / (a.hi - a.lo) * len;
}

static void frame(FILE *f, int x0, const char *title, const char *xlabel, const char *ylabel)
{
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#000'/>\n", x0, PY, PW, PH);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' font-size='15'>%s</text>\n", x0 + PW / 2, PY - 15, title);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>%s</text>\n", x0 + PW / 2, PY + PH + 40, xlabel);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' transform='rotate(-90 %d %d)'>%s</text>\n", x0 - 55,
            PY + PH / 2, x0 - 55, PY + PH / 2, ylabel);
}

static void y_ticks(FILE *f, int x0, axis a)
{
    for (double e = a.lo; e <= a.hi + 1e-9; e += 1) {
        double y = PY + PH - (e - a.lo) / (a.hi - a.lo) * PH;
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#ddd'/>\n", x0, y, x0 + PW, y);
        fprintf(f, "<text x='%d' y='%.1f' text-anchor='end' font-size='11'>1e%d</text>\n", x0 - 5, y + 4, (int)e);
    }
}

static void x_tick(FILE *f, double x, const char *label)
{
    fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#ddd'/>\n", x, PY, x, PY + PH);
    fprintf(f, "<text x='%.1f' y='%d' text-anchor='middle' font-size='11'>%s</text>\n", x, PY + PH + 16, label);
}

static void error_panel(FILE *f, const bench_report *r)
{
    frame(f, PX0, "Attention error vs size", "bits per element (log scale)", "attention rel. error, median");
    if (r->n_fidelity == 0) {
        fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>no fidelity data</text>\n", PX0 + PW / 2, PY + PH / 2);
        return;
    }
    double emin = INFINITY, emax = 0;
    for (uint32_t i = 0; i < r->n_fidelity; i++) {
        double e = r->fidelity[i].attn_rel_median;
        if (e > 0 && e < emin) emin = e;
        if (e > emax) emax = e;
    }
    axis ya = log_axis(emin, emax), xa = {log10(1.5), log10(20)};
    y_ticks(f, PX0, ya);
    const double bx[] = {2, 3, 4, 8, 16};
    for (int i = 0; i < 5; i++) {
        char l[16];
        snprintf(l, sizeof l, "%g", bx[i]);
        x_tick(f, map(xa, bx[i], PX0, PW), l);
    }
    for (int m = 0; m < 3; m++) {
        char pts[4096] = "";
        size_t used = 0;
        for (uint32_t i = 0; i < r->n_fidelity; i++) {
            const fidelity_result *x = &r->fidelity[i];
            if ((int)x->cfg.mode != m || !(x->attn_rel_median > 0) || !(x->bits_per_element > 0)) continue;
            double px = map(xa, x->bits_per_element, PX0, PW), py = PY + PH - map(ya, x->attn_rel_median, 0, PH);
            if (used < sizeof pts - 32) used += (size_t)snprintf(pts + used, sizeof pts - used, "%.1f,%.1f ", px, py);
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='4' fill='%s'><title>%s %u/%u: %.3g%% at %.2f bits</title></circle>\n",
                    px, py, mode_colour((pkv_mode)m), pkv_mode_name(x->cfg.mode), x->cfg.k_bits, x->cfg.v_bits,
                    100 * x->attn_rel_median, x->bits_per_element);
        }
        if (used)
            fprintf(f, "<polyline points='%s' fill='none' stroke='%s' stroke-width='2'/>\n", pts,
                    mode_colour((pkv_mode)m));
    }
    for (int m = 0; m < 3; m++) {
        int y = PY + 15 + 18 * m;
        fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' stroke-width='3'/>"
                   "<text x='%d' y='%d' font-size='12'>%s</text>\n",
                PX0 + PW - 110, y, PX0 + PW - 85, y, mode_colour((pkv_mode)m), PX0 + PW - 80, y + 4,
                pkv_mode_name((pkv_mode)m));
    }
}

static void speed_panel(FILE *f, const bench_report *r)
{
    frame(f, PX1, "Decode time vs context", "context length, tokens (log scale)", "ms per decode step");
    if (r->n_speed == 0) {
        fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>no speed data</text>\n", PX1 + PW / 2, PY + PH / 2);
        return;
    }
    double tmin = INFINITY, tmax = 0, cmin = INFINITY, cmax = 0;
    for (uint32_t i = 0; i < r->n_speed; i++) {
        const speed_result *s = &r->speed[i];
        if (s->ms_per_step > 0 && s->ms_per_step < tmin) tmin = s->ms_per_step;
        if (s->ms_per_step > tmax) tmax = s->ms_per_step;
        if (s->context < cmin) cmin = s->context;
        if (s->context > cmax) cmax = s->context;
    }
    axis ya = log_axis(tmin, tmax);
    axis xa = {log10(cmin) - 0.15, log10(cmax > cmin ? cmax : cmin * 2) + 0.15};
    y_ticks(f, PX1, ya);
    for (uint32_t i = 0; i < r->n_speed; i++) {
        int seen = 0;
        for (uint32_t j = 0; j < i; j++) seen |= r->speed[j].context == r->speed[i].context;
        if (seen) continue;
        char l[16];
        snprintf(l, sizeof l, "%u", r->speed[i].context);
        x_tick(f, map(xa, r->speed[i].context, PX1, PW), l);
    }
    int legend = 0;
    for (uint32_t i = 0; i < r->n_speed; i++) {
        const bench_config *c = &r->speed[i].cfg;
        int first = 1;
        for (uint32_t j = 0; j < i; j++)
            if (memcmp(&r->speed[j].cfg, c, sizeof *c) == 0) first = 0;
        if (!first) continue;
        char pts[4096] = "";
        size_t used = 0;
        for (uint32_t j = i; j < r->n_speed; j++) {
            const speed_result *s = &r->speed[j];
            if (memcmp(&s->cfg, c, sizeof *c) != 0 || !(s->ms_per_step > 0)) continue;
            double px = map(xa, s->context, PX1, PW), py = PY + PH - map(ya, s->ms_per_step, 0, PH);
            if (used < sizeof pts - 32) used += (size_t)snprintf(pts + used, sizeof pts - used, "%.1f,%.1f ", px, py);
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'><title>%s %u/%u, %u tokens: %.4g ms</title></circle>\n",
                    px, py, mode_colour(c->mode), pkv_mode_name(c->mode), c->k_bits, c->v_bits, s->context, s->ms_per_step);
        }
        fprintf(f, "<polyline points='%s' fill='none' stroke='%s' stroke-width='2' stroke-dasharray='%s'/>\n", pts,
                mode_colour(c->mode), bits_dash(c->k_bits));
        int y = PY + 15 + 16 * legend++;
        fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' stroke-width='2' stroke-dasharray='%s'/>"
                   "<text x='%d' y='%d' font-size='11'>%s %s</text>\n",
                PX1 + 10, y, PX1 + 40, y, mode_colour(c->mode), bits_dash(c->k_bits), PX1 + 45, y + 4,
                pkv_mode_name(c->mode), c->mode == PKV_MODE_FP16 ? "" : (c->k_bits == 2 ? "2-bit" : c->k_bits == 3 ? "3-bit" : c->k_bits == 4 ? "4-bit" : "8-bit"));
    }
}

int report_svg(const char *path, const bench_report *r, char *err, size_t err_len)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, err_len, "--plot %s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n");
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' "
               "font-family='sans-serif' font-size='13'>\n", W, H, W, H);
    fprintf(f, "<rect width='100%%' height='100%%' fill='white'/>\n");
    char dev[300];
    snprintf(dev, sizeof dev, "%s", r->device.name);
    for (char *p = dev; *p; p++)
        if (*p == '<' || *p == '>' || *p == '&' || *p == '\'') *p = ' ';
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' font-size='12' fill='#444'>PatternKV %s on %s: %s</text>\n",
            W / 2, H - 12, pkv_version_string(), pkv_backend_name(r->device.backend), dev);
    error_panel(f, r);
    speed_panel(f, r);
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) {
        snprintf(err, err_len, "--plot %s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
