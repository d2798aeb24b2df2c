/* pkv eval-model --plot FILE.svg: the fidelity/memory frontier, drawn by hand (no dependencies).
 * x: cache bits per element as pkv_cache_stats counts them (codes, scales, zeros, indices, masks,
 * banks, the fp16 window); y: bits per byte. One curve per eval_mode_curve name ("pattern",
 * "direct", "direct g64", ...) through its runs in order of size; FP16 is a dashed horizontal line
 * (at 16 bits per element it would squash the axis). Each point has a tooltip with its numbers. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_model.h"

#define W 760
#define H 500
#define X0 90
#define Y0 60
#define PW 480
#define PH 360

static const char *const colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                      "#17becf", "#bcbd22", "#7f7f7f"};

/* Round tick step for a span: 1, 2 or 5 times a power of ten, about six ticks. */
static double tick_step(double span)
{
    double raw = span / 6.0, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1.0 : m < 3.5 ? 2.0 : m < 7.5 ? 5.0 : 10.0) * p;
}

static double px(double x, double lo, double hi) { return X0 + (x - lo) / (hi - lo) * PW; }
static double py(double y, double lo, double hi) { return Y0 + PH - (y - lo) / (hi - lo) * PH; }

static void escape(char *s)
{
    for (; *s; s++)
        if (*s == '<' || *s == '>' || *s == '&' || *s == '\'' || *s == '"') *s = ' ';
}

int eval_write_plot(const eval_options *o, const llama2_model *m, const eval_result *res, int n_res, char *err,
                    size_t err_len)
{
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY, fp16 = NAN;
    for (int i = 0; i < n_res; i++) {
        double y = res[i].bits_per_byte;
        if (!isfinite(y)) continue;
        if (y < ylo) ylo = y;
        if (y > yhi) yhi = y;
        if (res[i].m.mode == PKV_MODE_FP16) {
            fp16 = y;
            continue;
        }
        double x = res[i].bits_per_element;
        if (x < xlo) xlo = x;
        if (x > xhi) xhi = x;
    }
    if (!(xlo <= xhi)) xlo = 1.0, xhi = 5.0;
    if (!(ylo <= yhi)) ylo = 0.0, yhi = 1.0;
    double xpad = (xhi - xlo) * 0.08 + 0.1, ypad = (yhi - ylo) * 0.08 + 1e-3;
    xlo -= xpad, xhi += xpad, ylo -= ypad, yhi += ypad;

    FILE *f = fopen(o->plot, "w");
    if (!f) {
        snprintf(err, err_len, "--plot %s: cannot write: %s", o->plot, strerror(errno));
        return -1;
    }
    fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n"
               "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d' "
               "font-family='sans-serif' font-size='13'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
            W, H, W, H);
    char name[512], win[32], group[64];
    const char *slash = strrchr(o->model, '/');
    eval_describe_group_window(o, group, sizeof group, win, sizeof win);
    snprintf(name, sizeof name, "%s: head_dim %d, %d layers; %u tokens from byte %u; group %s, window %s; "
             "%u-token prompt", slash ? slash + 1 : o->model, m->cfg.head_dim, m->cfg.n_layers, o->tokens, o->offset,
             group, win, o->prefill);
    escape(name);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' font-size='15'>Bits per byte against cache size</text>\n",
            X0 + PW / 2, Y0 - 30);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' font-size='11' fill='#444'>%s</text>\n", X0 + PW / 2, Y0 - 12,
            name);
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#000'/>\n", X0, Y0, PW, PH);
    double xs = tick_step(xhi - xlo), ys = tick_step(yhi - ylo);
    for (double t = ceil(xlo / xs) * xs; t <= xhi; t += xs) {
        double x = px(t, xlo, xhi);
        fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#ddd'/><text x='%.1f' y='%d' "
                   "text-anchor='middle' font-size='11'>%g</text>\n", x, Y0, x, Y0 + PH, x, Y0 + PH + 16, t);
    }
    for (double t = ceil(ylo / ys) * ys; t <= yhi; t += ys) {
        double y = py(t, ylo, yhi);
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#ddd'/><text x='%d' y='%.1f' "
                   "text-anchor='end' font-size='11'>%.4g</text>\n", X0, y, X0 + PW, y, X0 - 5, y + 4, t);
    }
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>cache bits per element (everything stored)</text>\n",
            X0 + PW / 2, Y0 + PH + 40);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' transform='rotate(-90 %d %d)'>bits per byte</text>\n", X0 - 60,
            Y0 + PH / 2, X0 - 60, Y0 + PH / 2);
    int legend = 0;
    if (isfinite(fp16)) {
        double y = py(fp16, ylo, yhi);
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#555' stroke-dasharray='6,4'/>\n", X0, y, X0 + PW, y);
        fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#555' stroke-dasharray='6,4' stroke-width='2'/>"
                   "<text x='%d' y='%d' font-size='12'>fp16 (%.4f)</text>\n", X0 + PW + 15, Y0 + 10, X0 + PW + 40,
                Y0 + 10, X0 + PW + 45, Y0 + 14, fp16);
        legend++;
    }
    /* curves in order of first appearance; points of a curve by size */
    int *order = malloc((size_t)n_res * sizeof *order);
    if (!order) {
        fclose(f);
        snprintf(err, err_len, "--plot: out of memory");
        return -1;
    }
    for (int i = 0; i < n_res; i++) {
        char ci[48];
        if (res[i].m.mode == PKV_MODE_FP16) continue;
        eval_mode_curve(o, &res[i].m, ci, sizeof ci);
        int first = 1, n = 0;
        for (int j = 0; j < n_res && first; j++) {
            char cj[48];
            if (res[j].m.mode == PKV_MODE_FP16) continue;
            eval_mode_curve(o, &res[j].m, cj, sizeof cj);
            if (strcmp(ci, cj) != 0) continue;
            if (j < i) first = 0;
            else order[n++] = j;
        }
        if (!first) continue;
        for (int a = 1; a < n; a++) /* insertion sort by bits per element */
            for (int b = a; b > 0 && res[order[b]].bits_per_element < res[order[b - 1]].bits_per_element; b--) {
                int t = order[b];
                order[b] = order[b - 1], order[b - 1] = t;
            }
        const char *col = colours[(legend - (isfinite(fp16) ? 1 : 0)) % (int)(sizeof colours / sizeof colours[0])];
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", col);
        for (int a = 0; a < n; a++)
            fprintf(f, "%.1f,%.1f ", px(res[order[a]].bits_per_element, xlo, xhi),
                    py(res[order[a]].bits_per_byte, ylo, yhi));
        fprintf(f, "'/>\n");
        for (int a = 0; a < n; a++) {
            const eval_result *r = &res[order[a]];
            double x = px(r->bits_per_element, xlo, xhi), y = py(r->bits_per_byte, ylo, yhi);
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='4' fill='%s'><title>%s %u/%u bits: %.4f bits per byte at "
                       "%.3f bits per element</title></circle>\n<text x='%.1f' y='%.1f' font-size='10' fill='%s'>"
                       "%u/%u</text>\n", x, y, col, ci, r->m.k_bits, r->m.v_bits, r->bits_per_byte,
                    r->bits_per_element, x + 6, y - 6, col, r->m.k_bits, r->m.v_bits);
        }
        int ly = Y0 + 10 + 20 * legend++;
        fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' stroke-width='3'/><text x='%d' y='%d' "
                   "font-size='12'>%s</text>\n", X0 + PW + 15, ly, X0 + PW + 40, ly, col, X0 + PW + 45, ly + 4, ci);
    }
    free(order);
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) {
        snprintf(err, err_len, "--plot %s: write failed: %s", o->plot, strerror(errno));
        return -1;
    }
    return 0;
}
