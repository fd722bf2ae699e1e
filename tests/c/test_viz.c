/* Pure-C tests of the original module's holographic views in viz.c: the 3x3
 * renormalisation blur, the bulk stack of DenseEngine.generate_bulk_state, and
 * the HOLOGRAPHIC / HOLOGRAPHIC_BULK maps, each against a direct float64
 * evaluation of its definition (include/atheria/viz.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atheria/viz.h"
#include "check.h"

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static double rnd(void) { /* uniform in [-1, 1) */
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) / 4503599627370496.0 - 1.0;
}

/* conv2d with [[1,2,1],[2,4,2],[1,2,1]] / 16, zero padding 1, written as the 9-term sum. */
static double ref_blur(const float *p, int64_t h, int64_t w, int64_t y, int64_t x) {
    static const double k[3][3] = {{1, 2, 1}, {2, 4, 2}, {1, 2, 1}};
    double s = 0.0;
    int dy, dx;
    for (dy = -1; dy <= 1; dy++)
        for (dx = -1; dx <= 1; dx++) {
            int64_t yy = y + dy, xx = x + dx;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            s += k[dy + 1][dx + 1] / 16.0 * (double)p[yy * w + xx];
        }
    return s;
}

static void check_blur(int64_t planes, int64_t h, int64_t w) {
    ath_error err;
    int64_t n = planes * h * w, i, p, y, x;
    float *in = (float *)malloc((size_t)n * sizeof *in), *out = (float *)malloc((size_t)n * sizeof *out);
    double maxerr = 0.0;
    for (i = 0; i < n; i++) in[i] = (float)(3.0 * rnd());
    CHECK(ath_blur3x3(in, planes, h, w, out, &err) == ATH_OK, "blur %lldx%lldx%lld", (long long)planes,
          (long long)h, (long long)w);
    for (p = 0; p < planes; p++)
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) {
                double r = ref_blur(in + p * h * w, h, w, y, x);
                maxerr = fmax(maxerr, fabs(out[p * h * w + y * w + x] - r) / (1.0 + fabs(r)));
            }
    CHECK(maxerr <= 1.2e-7, "blur = 3x3 conv, zero padding (%lldx%lldx%lld, err %g)", (long long)planes,
          (long long)h, (long long)w, maxerr);
    free(in);
    free(out);
}

static void check_bulk(int64_t c, int64_t h, int64_t w, int64_t depth) {
    ath_error err;
    int64_t layer = c * h * w, l, i;
    float *base = (float *)malloc((size_t)layer * sizeof *base);
    float *out = (float *)malloc((size_t)(layer * depth) * sizeof *out);
    float *ref = (float *)malloc((size_t)(layer * depth) * sizeof *ref);
    float *inplace = (float *)malloc((size_t)(layer * depth) * sizeof *inplace);
    int same = 1;
    for (i = 0; i < layer; i++) base[i] = (float)rnd();
    CHECK(ath_bulk_stack(base, c, h, w, depth, out, &err) == ATH_OK, "bulk stack");
    memcpy(ref, base, (size_t)layer * sizeof *ref);
    for (l = 1; l < depth; l++)
        CHECK(ath_blur3x3(ref + (l - 1) * layer, c, h, w, ref + l * layer, &err) == ATH_OK, "blur layer");
    CHECK(memcmp(out, ref, (size_t)(layer * depth) * sizeof *out) == 0,
          "layer l is the blur of layer l-1, layer 0 the base (depth %lld)", (long long)depth);
    memcpy(inplace, base, (size_t)layer * sizeof *inplace);
    CHECK(ath_bulk_stack(inplace, c, h, w, depth, inplace, &err) == ATH_OK, "bulk stack in place");
    for (i = 0; i < layer * depth; i++) same &= inplace[i] == out[i];
    CHECK(same, "bulk stack with base == out gives the same layers");
    free(base);
    free(out);
    free(ref);
    free(inplace);
}

static void check_holographic(int64_t h, int64_t w, int64_t d, int64_t channel) {
    ath_error err;
    int64_t n = h * w, i, k, dims[3];
    ath_cf32 *f = (ath_cf32 *)malloc((size_t)(n * d) * sizeof *f);
    float *out = (float *)malloc((size_t)(n * ATH_VIZ_BULK_DEPTH) * sizeof *out);
    float *dens = (float *)malloc((size_t)(n * ATH_VIZ_BULK_DEPTH) * sizeof *dens);
    double maxerr = 0.0;
    int in_unit = 1;
    for (i = 0; i < n * d; i++) {
        /* mostly small values (R below its clamp), some large (R and B clamped) */
        double scale = (i % 7 == 0) ? 2.0 : 0.2;
        f[i].re = (float)(scale * rnd());
        f[i].im = (float)(scale * rnd());
    }
    f[channel].re = f[channel].im = 0.0f; /* arg 0 -> G = 0.5 */
    CHECK(ath_viz_shape(ATH_VIZ_HOLOGRAPHIC, h, w, dims) == 3 && dims[0] == h && dims[1] == w && dims[2] == 3,
          "holographic shape (h, w, 3)");
    CHECK(ath_viz_compute(ATH_VIZ_HOLOGRAPHIC, f, h, w, d, channel, out, &err) == ATH_OK, "holographic");
    for (i = 0; i < n; i++) {
        double s = 0.0, re = f[i * d + channel].re, im = f[i * d + channel].im, r, g, b;
        for (k = 0; k < d; k++) s += (double)f[i * d + k].re * f[i * d + k].re + (double)f[i * d + k].im * f[i * d + k].im;
        r = fmin(1.0, 5.0 * s);
        g = (atan2(im, re) + 3.14159265358979323846) / (2.0 * 3.14159265358979323846);
        b = fmin(1.0, fmax(0.0, (re + 1.0) / 2.0));
        maxerr = fmax(maxerr, fabs(out[3 * i] - r) + fabs(out[3 * i + 1] - g) + fabs(out[3 * i + 2] - b));
        for (k = 0; k < 3; k++) in_unit &= out[3 * i + k] >= 0.0f && out[3 * i + k] <= 1.0f;
    }
    CHECK(in_unit, "holographic values in [0, 1]");
    CHECK(maxerr < 3e-7, "holographic R, G, B (err %g)", maxerr);
    CHECK(fabs(out[1] - 0.5f) < 1e-7 && fabs(out[2] - 0.5f) < 1e-7, "zero cell: G = B = 0.5");

    CHECK(ath_viz_shape(ATH_VIZ_HOLOGRAPHIC_BULK, h, w, dims) == 3 && dims[0] == ATH_VIZ_BULK_DEPTH &&
              dims[1] == h && dims[2] == w,
          "holographic_bulk shape (5, h, w)");
    CHECK(ath_viz_compute(ATH_VIZ_HOLOGRAPHIC_BULK, f, h, w, d, 0, out, &err) == ATH_OK, "holographic_bulk");
    CHECK(ath_viz_compute(ATH_VIZ_DENSITY, f, h, w, d, 0, dens, &err) == ATH_OK, "density");
    CHECK(ath_bulk_stack(dens, 1, h, w, ATH_VIZ_BULK_DEPTH, dens, &err) == ATH_OK, "bulk of density");
    CHECK(memcmp(out, dens, (size_t)(n * ATH_VIZ_BULK_DEPTH) * sizeof *out) == 0,
          "holographic_bulk = density then 4 blurs");
    free(f);
    free(out);
    free(dens);
}

int main(void) {
    ath_error err;
    ath_viz_type t;
    int64_t dims[3];
    float one = 1.0f, o[9];

    CHECK(ath_viz_parse("holographic", &t, &err) == ATH_OK && t == ATH_VIZ_HOLOGRAPHIC, "parse holographic");
    CHECK(ath_viz_parse("Holographic_Bulk", &t, &err) == ATH_OK && t == ATH_VIZ_HOLOGRAPHIC_BULK,
          "parse holographic_bulk");
    CHECK(strcmp(ath_viz_name(ATH_VIZ_HOLOGRAPHIC_BULK), "holographic_bulk") == 0, "name");
    CHECK(ath_viz_shape(ATH_VIZ_DENSITY, 4, 5, dims) == 2 && dims[0] == 4 && dims[1] == 5, "scalar shape");
    CHECK(ath_viz_shape(ATH_VIZ_COUNT, 4, 5, dims) == 0, "unknown type shape");

    /* a single 1 spreads the kernel itself, clipped at the edges */
    CHECK(ath_blur3x3(&one, 1, 1, 1, o, &err) == ATH_OK && o[0] == 0.25f, "1x1 plane keeps the centre weight");
    {
        float in[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0};
        CHECK(ath_blur3x3(in, 1, 3, 3, o, &err) == ATH_OK, "3x3 blur");
        CHECK(o[0] == 0.0625f && o[1] == 0.125f && o[4] == 0.25f && o[8] == 0.0625f, "impulse response = kernel");
    }
    check_blur(1, 1, 7);
    check_blur(1, 7, 1);
    check_blur(2, 2, 2);
    check_blur(3, 17, 23);
    check_blur(1, 160, 130); /* large enough for the parallel loop */
    check_bulk(1, 9, 11, 1);
    check_bulk(3, 12, 10, 4);
    check_bulk(2, 1, 5, 3);
    check_holographic(9, 13, 3, 0);
    check_holographic(6, 4, 2, 1);
    check_holographic(140, 130, 1, 0);

    CHECK(ath_bulk_stack(o, 1, 3, 3, 0, o, &err) == ATH_ERR_INVALID, "depth 0 refused");
    CHECK(ath_bulk_stack(o, 1, 3, 3, -2, o, &err) == ATH_ERR_INVALID, "negative depth refused");
    CHECK(ath_blur3x3(o, -1, 3, 3, o, &err) == ATH_ERR_RANGE, "negative planes refused");
    CHECK(ath_blur3x3(NULL, 1, 3, 3, o, &err) == ATH_ERR_INVALID, "NULL input refused");
    CHECK(ath_bulk_stack(o, 1, 0, 3, 4, o, &err) == ATH_OK, "empty plane is fine");
    return check_summary();
}
