/* Pure-C tests of the models, the sparse Engine and the DenseEngine.
 *
 * Build and run:
 *   gcc -std=c11 -O1 -Wall -Wextra -Werror -fopenmp -Iinclude tests/c/test_engine.c
 *       src/core/(every .c) -lm -o /tmp/test_engine && /tmp/test_engine
 * Prints "N passed, 0 failed" and exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "atheria/dense_engine.h"
#include "atheria/engine.h"
#include "atheria/model.h"

#include "check.h"

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        ath_error e_;                                                                              \
        ath_status s_;                                                                             \
        ath_error_clear(&e_);                                                                      \
        s_ = (expr);                                                                               \
        CHECK(s_ == ATH_OK, "%s -> %s: %s", #expr, ath_status_name(s_), e_.message);              \
    } while (0)

static void set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* deterministic pseudo-random floats in [-1, 1) */
static uint64_t g_rng = 0x1234567ULL;
static float frand(void) {
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(g_rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static int close_f(double a, double b, double tol) { return fabs(a - b) <= tol; }

/* ------------------------------------------------------- test models */

/* A model that returns a constant delta at every position, fails on demand,
 * and counts the memory protocol calls. */
typedef struct test_ctx {
    float re, im;        /* delta for every channel */
    int fail_after;      /* fail on the call with this index (-1: never) */
    int nan_after;       /* return NaN from this call on (-1: never) */
    int calls, commits, discards, resets;
} test_ctx;

static ath_status test_forward(void *ctx, const float *in, const int64_t shape[4], float *out,
                               int want_center, ath_out_layout *layout, ath_error *err) {
    test_ctx *t = (test_ctx *)ctx;
    const int64_t B = shape[0], C = shape[1], HW = shape[2] * shape[3], d = C / 2;
    int64_t b, c, i;
    int call = t->calls++;
    (void)in;
    (void)want_center;
    if (t->fail_after >= 0 && call >= t->fail_after)
        return ath_error_set(err, ATH_ERR_MODEL, "test model: forced failure");
    for (b = 0; b < B; b++)
        for (c = 0; c < C; c++)
            for (i = 0; i < HW; i++) {
                float v = c < d ? t->re : t->im;
                if (t->nan_after >= 0 && call >= t->nan_after) v = NAN;
                out[(b * C + c) * HW + i] = v;
            }
    *layout = ATH_OUT_FULL;
    return ATH_OK;
}
static void test_commit(void *ctx) { ((test_ctx *)ctx)->commits++; }
static void test_discard(void *ctx) { ((test_ctx *)ctx)->discards++; }
static void test_reset(void *ctx) { ((test_ctx *)ctx)->resets++; }
static void test_destroy(void *ctx) { (void)ctx; }

static const ath_model_ops test_ops = {"test", test_forward, NULL, NULL, NULL, test_destroy};
static const ath_model_ops test_mem_ops = {"test-mem", test_forward, test_commit, test_discard,
                                           test_reset, test_destroy};

static ath_model *test_model(test_ctx *ctx, int memory) {
    ath_model *m = (ath_model *)calloc(1, sizeof *m);
    m->ops = memory ? &test_mem_ops : &test_ops;
    m->ctx = ctx;
    m->channels = -1;
    m->receptive_radius = 0;
    m->zero_preserving = -1;
    m->has_memory = memory;
    return m;
}

/* --------------------------------------------- naive reference conv */

typedef struct ref_layer {
    int64_t out, in, k;
    float *w, *b;
} ref_layer;

/* Conv2d with zero padding k//2, double accumulation, activation (relu) between layers. */
static void ref_conv(const ref_layer *L, int nl, const float *in, int64_t H, int64_t W, float *out) {
    int64_t maxc = 0, l;
    double *a, *bbuf;
    for (l = 0; l < nl; l++) {
        if (L[l].in > maxc) maxc = L[l].in;
        if (L[l].out > maxc) maxc = L[l].out;
    }
    a = (double *)calloc((size_t)(maxc * H * W), sizeof(double));
    bbuf = (double *)calloc((size_t)(maxc * H * W), sizeof(double));
    for (l = 0; l < L[0].in * H * W; l++) a[l] = in[l];
    for (l = 0; l < nl; l++) {
        const ref_layer *R = &L[l];
        int64_t o, i, y, x, ky, kx, r = R->k / 2;
        for (o = 0; o < R->out; o++)
            for (y = 0; y < H; y++)
                for (x = 0; x < W; x++) {
                    double s = R->b ? R->b[o] : 0.0;
                    for (i = 0; i < R->in; i++)
                        for (ky = 0; ky < R->k; ky++)
                            for (kx = 0; kx < R->k; kx++) {
                                int64_t yy = y + ky - r, xx = x + kx - r;
                                if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                                s += (double)R->w[((o * R->in + i) * R->k + ky) * R->k + kx] *
                                     a[(i * H + yy) * W + xx];
                            }
                    if (l + 1 < nl && s < 0) s = 0; /* relu */
                    bbuf[(o * H + y) * W + x] = s;
                }
        {
            double *t = a;
            a = bbuf;
            bbuf = t;
        }
    }
    for (l = 0; l < L[nl - 1].out * H * W; l++) out[l] = (float)a[l];
    free(a);
    free(bbuf);
}

static void make_layers(ref_layer *L, int nl, const int64_t *chans, const int64_t *ks, int bias) {
    int l;
    for (l = 0; l < nl; l++) {
        int64_t n, i;
        L[l].in = chans[l];
        L[l].out = chans[l + 1];
        L[l].k = ks[l];
        n = L[l].out * L[l].in * L[l].k * L[l].k;
        L[l].w = (float *)malloc((size_t)n * sizeof(float));
        for (i = 0; i < n; i++) L[l].w[i] = 0.3f * frand();
        L[l].b = NULL;
        if (bias) {
            L[l].b = (float *)malloc((size_t)L[l].out * sizeof(float));
            for (i = 0; i < L[l].out; i++) L[l].b[i] = 0.1f * frand();
        }
    }
}

static void free_layers(ref_layer *L, int nl) {
    int l;
    for (l = 0; l < nl; l++) {
        free(L[l].w);
        free(L[l].b);
    }
}

static ath_model *conv_from(const ref_layer *L, int nl, ath_activation act) {
    ath_conv_layer_spec spec[8];
    ath_model *m = NULL;
    ath_error err;
    int l;
    for (l = 0; l < nl; l++) {
        spec[l].out_channels = L[l].out;
        spec[l].in_channels = L[l].in;
        spec[l].kernel = L[l].k;
        spec[l].weight = L[l].w;
        spec[l].bias = L[l].b;
    }
    if (ath_model_conv_create((size_t)nl, spec, act, &m, &err) != ATH_OK) {
        printf("conv_create failed: %s\n", err.message);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------- tests */

static void test_step_rule(void) {
    ath_cf32 psi = {0.6f, 0.8f}, out;
    float dre = 0.1f, dim = -0.2f;
    double n;
    /* plain: delta = (0.1 - 0.2i) - 0.5 psi = -0.2 - 0.6i; psi' = 0.4 + 0.2i */
    n = ath_step_rule(&psi, &dre, &dim, 1, 1, 0.5, 0, &out);
    CHECK(close_f(n, sqrt(0.2), 1e-7), "norm %g", n);
    CHECK(close_f(out.re, 0.4 / (sqrt(0.2) + 1e-9), 1e-6) && close_f(out.im, 0.2 / (sqrt(0.2) + 1e-9), 1e-6),
          "plain rule gives %g %g", out.re, out.im);
    /* unitary: delta = (0.1 - 0.2i)(0.6 + 0.8i) = 0.22 - 0.04i; -0.5 psi -> -0.08 - 0.44i;
     * psi' = 0.52 + 0.36i, |psi'| = sqrt(0.4) */
    n = ath_step_rule(&psi, &dre, &dim, 1, 1, 0.5, 1, &out);
    CHECK(close_f(n, sqrt(0.4), 1e-7), "unitary norm %g", n);
    CHECK(close_f(out.re, 0.52 / sqrt(0.4), 1e-6) && close_f(out.im, 0.36 / sqrt(0.4), 1e-6),
          "unitary rule gives %g %g", out.re, out.im);
    /* strided delta, two channels, gamma 0, zero delta: normalisation only */
    {
        ath_cf32 p2[2] = {{3.0f, 0.0f}, {0.0f, 4.0f}}, o2[2];
        float dl[4] = {0, 9, 0, 9}; /* re at 0, 2; im at 1, 3 with stride 2 ... */
        float dr2[3] = {0.0f, 7.0f, 0.0f}, di2[3] = {0.0f, 7.0f, 0.0f};
        (void)dl;
        n = ath_step_rule(p2, dr2, di2, 2, 2, 0.0, 0, o2);
        CHECK(close_f(n, 5.0, 1e-12), "norm 5 expected, got %g", n);
        CHECK(close_f(o2[0].re, 0.6, 1e-7) && close_f(o2[1].im, 0.8, 1e-7) && o2[0].im == 0.0f &&
                  o2[1].re == 0.0f,
              "normalised state %g %g %g %g", o2[0].re, o2[0].im, o2[1].re, o2[1].im);
    }
}

static void test_conv_model(void) {
    const int64_t chans[4] = {4, 6, 5, 4}, ks[3] = {3, 5, 1};
    ref_layer L[3];
    ath_model *m;
    const int64_t B = 3, C = 4, H = 7, W = 9;
    float *in, *out, *ref, *outc;
    int64_t shape[4] = {B, C, H, W}, i, b, c;
    ath_out_layout lay;
    double maxd = 0.0;
    int same = 1;

    make_layers(L, 3, chans, ks, 1);
    m = conv_from(L, 3, ATH_ACT_RELU);
    CHECK(m != NULL, "conv model created");
    if (m == NULL) return;
    CHECK(m->receptive_radius == 3, "receptive radius %lld", (long long)m->receptive_radius);
    CHECK(m->zero_preserving == 0, "biased conv is not zero preserving");
    CHECK(m->channels == 4, "channels");
    in = (float *)malloc((size_t)(B * C * H * W) * sizeof(float));
    out = (float *)malloc((size_t)(B * C * H * W) * sizeof(float));
    ref = (float *)malloc((size_t)(C * H * W) * sizeof(float));
    outc = (float *)malloc((size_t)(B * C) * sizeof(float));
    for (i = 0; i < B * C * H * W; i++) in[i] = frand();
    CHECK_OK(ath_model_forward(m, in, shape, out, 0, &lay, &e_));
    CHECK(lay == ATH_OUT_FULL, "full layout");
    for (b = 0; b < B; b++) {
        ref_conv(L, 3, in + b * C * H * W, H, W, ref);
        for (i = 0; i < C * H * W; i++) {
            double dd = fabs((double)ref[i] - out[b * C * H * W + i]);
            if (dd > maxd) maxd = dd;
        }
    }
    CHECK(maxd < 1e-5, "conv vs naive reference: max diff %g", maxd);
    CHECK_OK(ath_model_forward(m, in, shape, outc, 1, &lay, &e_));
    CHECK(lay == ATH_OUT_CENTER, "centre layout");
    for (b = 0; b < B; b++)
        for (c = 0; c < C; c++)
            if (outc[b * C + c] != out[((b * C + c) * H + H / 2) * W + W / 2]) same = 0;
    CHECK(same, "centre mode is bit-identical to the centre of the full map");
    /* thread invariance of the model itself (batch parallel and layer parallel paths) */
    {
        int64_t shape1[4] = {1, C, H, W};
        float *o1 = (float *)malloc((size_t)(C * H * W) * sizeof(float));
        float *o2 = (float *)malloc((size_t)(C * H * W) * sizeof(float));
        set_threads(1);
        CHECK_OK(ath_model_forward(m, in, shape1, o1, 0, &lay, &e_));
        set_threads(2);
        CHECK_OK(ath_model_forward(m, in, shape1, o2, 0, &lay, &e_));
        CHECK(memcmp(o1, o2, (size_t)(C * H * W) * sizeof(float)) == 0, "conv thread invariance");
        CHECK(memcmp(o1, out, (size_t)(C * H * W) * sizeof(float)) == 0,
              "batch-parallel and layer-parallel paths agree bitwise");
        free(o1);
        free(o2);
    }
    {
        ath_error err;
        int64_t bad[4] = {1, 6, 3, 3};
        CHECK(ath_model_forward(m, in, bad, out, 0, &lay, &err) == ATH_ERR_INVALID,
              "channel mismatch refused");
    }
    ath_model_destroy(m);
    /* bias-free: zero preserving, and the probe agrees */
    {
        ref_layer L2[1];
        const int64_t ch2[2] = {4, 4}, k2[1] = {3};
        int z = -1;
        make_layers(L2, 1, ch2, k2, 0);
        m = conv_from(L2, 1, ATH_ACT_TANH);
        CHECK(m != NULL && m->zero_preserving == 1, "bias-free conv is zero preserving");
        CHECK_OK(ath_model_probe_zero(m, 4, 3, 3, &z, &e_));
        CHECK(z == 1, "probe says zero preserving");
        ath_model_destroy(m);
        free_layers(L2, 1);
    }
    /* bad specs */
    {
        ath_conv_layer_spec s;
        ath_error err;
        float w[4 * 4 * 2 * 2];
        memset(w, 0, sizeof w);
        s.out_channels = 4;
        s.in_channels = 4;
        s.kernel = 2;
        s.weight = w;
        s.bias = NULL;
        CHECK(ath_model_conv_create(1, &s, ATH_ACT_RELU, &m, &err) == ATH_ERR_INVALID, "even kernel refused");
        s.kernel = 1;
        s.out_channels = 3;
        CHECK(ath_model_conv_create(1, &s, ATH_ACT_RELU, &m, &err) == ATH_ERR_INVALID,
              "in != out channels refused");
        s.out_channels = 4;
        w[0] = NAN;
        CHECK(ath_model_conv_create(1, &s, ATH_ACT_RELU, &m, &err) == ATH_ERR_NONFINITE,
              "NaN weight refused");
    }
    free(in);
    free(out);
    free(ref);
    free(outc);
    free_layers(L, 3);
}

static ath_engine *make_engine(int64_t d, ath_background bg, ath_extent ext, double thr, int64_t g) {
    ath_engine_config cfg;
    ath_engine *e = NULL;
    ath_error err;
    ath_engine_config_default(&cfg, d);
    cfg.background = bg;
    cfg.extent = ext;
    cfg.threshold = thr;
    cfg.grid_size = g;
    if (ath_engine_create(&cfg, &e, &err) != ATH_OK) printf("engine_create: %s\n", err.message);
    return e;
}

static void test_engine_basic(void) {
    ath_engine *e = make_engine(1, ATH_BACKGROUND_ZERO, ATH_EXTENT_UNBOUNDED, 0.01, 64);
    ath_model *zero = NULL;
    ath_coord c[2] = {{0, 0, 0}, {10, 0, 0}};
    ath_cf32 s[2] = {{3.0f, 4.0f}, {0.005f, 0.0f}}, got[2];
    int64_t count = -1;
    ath_error err;

    CHECK_OK(ath_model_zero_create(2, &zero, &e_));
    CHECK(ath_engine_step(e, NULL, &err) == ATH_ERR_NO_MODEL, "step without model refused");
    CHECK_OK(ath_engine_set_model(e, zero, &e_));
    CHECK_OK(ath_engine_add_particles(e, 2, c, s, &e_));
    CHECK_OK(ath_engine_step(e, &count, &e_));
    /* (3+4i) -> n = 5 > 0.01 kept as 0.6+0.8i; 0.005 -> n <= threshold dropped;
     * zero neighbours -> n = 0 dropped */
    CHECK(count == 1 && ath_engine_matter_count(e) == 1, "matter count %lld", (long long)count);
    CHECK_OK(ath_engine_get_states(e, 2, c, got, &e_));
    CHECK(close_f(got[0].re, 3.0 / (5.0 + 1e-9), 1e-7) && close_f(got[0].im, 4.0 / (5.0 + 1e-9), 1e-7),
          "normalised particle %g %g", got[0].re, got[0].im);
    CHECK(got[1].re == 0.0f && got[1].im == 0.0f, "dropped cell reads the zero background");
    CHECK(ath_engine_step_count(e) == 1, "step count 1");
    {
        ath_engine_stats st;
        ath_engine_get_stats(e, &st);
        CHECK(st.evaluated == 18 && st.model_calls == 1, "evaluated %lld calls %lld",
              (long long)st.evaluated, (long long)st.model_calls);
    }
    /* threshold 0 keeps every non-zero cell; a constant model grows the blob by r per step */
    {
        ath_engine *e2 = make_engine(1, ATH_BACKGROUND_ZERO, ATH_EXTENT_UNBOUNDED, 0.0, 64);
        test_ctx t = {0.5f, 0.0f, -1, -1, 0, 0, 0, 0};
        ath_model *m = test_model(&t, 0);
        ath_cf32 one = {1.0f, 0.0f};
        ath_coord o = {5, 5, 2};
        CHECK_OK(ath_engine_set_model(e2, m, &e_));
        CHECK_OK(ath_engine_add_particles(e2, 1, &o, &one, &e_));
        CHECK_OK(ath_engine_step(e2, &count, &e_));
        CHECK(count == 9, "constant delta grows a Moore neighbourhood: %lld", (long long)count);
        CHECK_OK(ath_engine_step(e2, &count, &e_));
        CHECK(count == 25, "second step 5x5: %lld", (long long)count);
        {
            /* all in plane z = 2, Morton ordered */
            const ath_coord *mc = ath_cellmap_coords(ath_engine_matter(e2));
            size_t i;
            int ok = 1;
            for (i = 0; i < (size_t)count; i++) {
                if (mc[i].z != 2) ok = 0;
                if (i > 0 && ath_coord_compare_morton(&mc[i - 1], &mc[i]) >= 0) ok = 0;
            }
            CHECK(ok, "matter stays in its plane and is stored in Morton order");
        }
        /* query_radius / activate_neighborhood */
        {
            ath_coord *q = NULL;
            size_t nq = 0;
            ath_coord ctr = {5, 5, 2};
            CHECK_OK(ath_engine_query_radius(e2, ctr, 1.0, &q, &nq, &e_));
            CHECK(nq == 5, "query_radius 1 -> 5 cells, got %zu", nq);
            free(q);
            CHECK(ath_engine_query_radius(e2, ctr, -1.0, &q, &nq, &err) == ATH_ERR_INVALID,
                  "negative query radius refused");
            CHECK(ath_engine_activate_neighborhood(e2, ctr, -1, &err) == ATH_ERR_INVALID,
                  "negative activation radius refused");
            CHECK_OK(ath_engine_activate_neighborhood(e2, ctr, 3, &e_));
            CHECK(ath_engine_matter_count(e2) == 49, "activate 7x7 -> %zu", ath_engine_matter_count(e2));
        }
        ath_engine_clear(e2);
        CHECK(ath_engine_matter_count(e2) == 0 && ath_engine_step_count(e2) == 0, "clear");
        ath_engine_destroy(e2);
        ath_model_destroy(m);
    }
    /* refusals */
    {
        ath_cf32 bad = {NAN, 0.0f};
        ath_coord far = {ATH_COORD_LIMIT + 1, 0, 0};
        ath_cf32 ok = {1.0f, 0.0f};
        size_t before = ath_engine_matter_count(e);
        CHECK(ath_engine_add_particles(e, 1, c, &bad, &err) == ATH_ERR_NONFINITE, "NaN state refused");
        CHECK(ath_engine_add_particles(e, 1, &far, &ok, &err) == ATH_ERR_RANGE, "huge coord refused");
        CHECK(ath_engine_matter_count(e) == before, "refusals change nothing");
    }
    {
        test_ctx t = {0, 0, -1, -1, 0, 0, 0, 0};
        ath_model *mm = test_model(&t, 1);
        ath_model *wrong = NULL;
        CHECK(ath_engine_set_model(e, mm, &err) == ATH_ERR_INVALID, "memory model refused by Engine");
        CHECK_OK(ath_model_zero_create(4, &wrong, &e_));
        CHECK(ath_engine_set_model(e, wrong, &err) == ATH_ERR_INVALID, "channel mismatch refused");
        CHECK(ath_engine_get_model(e) == zero, "model unchanged after refusals");
        ath_model_destroy(mm);
        ath_model_destroy(wrong);
    }
    {
        ath_engine_config cfg;
        ath_engine *bad = NULL;
        ath_engine_config_default(&cfg, 4);
        cfg.patch = 4;
        CHECK(ath_engine_create(&cfg, &bad, &err) == ATH_ERR_INVALID, "even patch refused");
        ath_engine_config_default(&cfg, 4);
        cfg.grid_size = 1000000000;
        CHECK(ath_engine_create(&cfg, &bad, &err) == ATH_ERR_INVALID, "absurd grid refused");
        ath_engine_config_default(&cfg, 0);
        CHECK(ath_engine_create(&cfg, &bad, &err) == ATH_ERR_INVALID, "d_state 0 refused");
        ath_engine_config_default(&cfg, 4);
        cfg.threshold = NAN;
        CHECK(ath_engine_create(&cfg, &bad, &err) == ATH_ERR_INVALID, "NaN threshold refused");
    }
    ath_engine_destroy(e);
    ath_model_destroy(zero);
}

static int snapshot_equal(const ath_engine *a, const ath_cellmap *m, size_t n, const ath_coord *coords,
                          const ath_cf32 *states) {
    (void)a;
    return ath_cellmap_size(m) == n && memcmp(ath_cellmap_coords(m), coords, n * sizeof(ath_coord)) == 0 &&
           memcmp(ath_cellmap_states(m), states, n * (size_t)ath_cellmap_d_state(m) * sizeof(ath_cf32)) == 0;
}

static void test_double_buffering(void) {
    ath_engine_config cfg;
    ath_engine *e = NULL;
    test_ctx t = {0.1f, 0.0f, -1, -1, 0, 0, 0, 0};
    ath_model *m = test_model(&t, 0);
    ath_coord cs[50];
    ath_cf32 ss[50 * 2];
    ath_coord *save_c;
    ath_cf32 *save_s;
    size_t n, i;
    ath_error err;

    ath_engine_config_default(&cfg, 2);
    cfg.max_batch = 16; /* several model calls per step */
    CHECK_OK(ath_engine_create(&cfg, &e, &e_));
    for (i = 0; i < 50; i++) {
        cs[i] = ath_coord_make((int64_t)(i % 10) * 3, (int64_t)(i / 10) * 3, 0);
        ss[2 * i].re = 1.0f;
        ss[2 * i].im = 0.5f;
        ss[2 * i + 1].re = frand();
        ss[2 * i + 1].im = frand();
    }
    CHECK_OK(ath_engine_set_model(e, m, &e_));
    CHECK_OK(ath_engine_add_particles(e, 50, cs, ss, &e_));
    CHECK_OK(ath_engine_step(e, NULL, &e_));
    n = ath_engine_matter_count(e);
    save_c = (ath_coord *)malloc(n * sizeof(ath_coord));
    save_s = (ath_cf32 *)malloc(n * 2 * sizeof(ath_cf32));
    memcpy(save_c, ath_cellmap_coords(ath_engine_matter(e)), n * sizeof(ath_coord));
    memcpy(save_s, ath_cellmap_states(ath_engine_matter(e)), n * 2 * sizeof(ath_cf32));

    t.fail_after = t.calls + 3; /* fails in the middle of the step */
    CHECK(ath_engine_step(e, NULL, &err) == ATH_ERR_MODEL, "failing model fails the step");
    CHECK(strstr(err.message, "forced failure") != NULL, "error message kept: %s", err.message);
    CHECK(ath_engine_step_count(e) == 1, "step count unchanged after failure");
    CHECK(snapshot_equal(e, ath_engine_matter(e), n, save_c, save_s), "matter unchanged after failure");
    t.fail_after = -1;
    t.nan_after = t.calls + 1;
    CHECK(ath_engine_step(e, NULL, &err) == ATH_ERR_NONFINITE, "NaN output fails the step");
    CHECK(ath_engine_step_count(e) == 1 && snapshot_equal(e, ath_engine_matter(e), n, save_c, save_s),
          "matter unchanged after NaN output");
    t.nan_after = -1;
    CHECK_OK(ath_engine_step(e, NULL, &e_));
    CHECK(ath_engine_step_count(e) == 2, "engine usable after failures");
    free(save_c);
    free(save_s);
    ath_engine_destroy(e);
    ath_model_destroy(m);
}

/* Runs `steps` steps on a vacuum-background engine with a conv model and returns the matter. */
static void run_threads(int threads, ath_model *m, ath_extent ext, ath_coord **oc, ath_cf32 **os,
                        size_t *on) {
    ath_engine_config cfg;
    ath_engine *e = NULL;
    ath_coord cs[40];
    ath_cf32 ss[40 * 4];
    size_t i, n;
    uint64_t saved = g_rng;
    g_rng = 42;
    set_threads(threads);
    ath_engine_config_default(&cfg, 4);
    cfg.extent = ext;
    cfg.grid_size = 24;
    cfg.max_batch = 100;
    cfg.gamma_decay = 0.05;
    ath_engine_create(&cfg, &e, NULL);
    for (i = 0; i < 40; i++) {
        int k;
        cs[i] = ath_coord_make((int64_t)(frand() * 10 + 11), (int64_t)(frand() * 10 + 11), 0);
        for (k = 0; k < 4; k++) {
            ss[i * 4 + (size_t)k].re = frand();
            ss[i * 4 + (size_t)k].im = frand();
        }
    }
    ath_engine_add_particles(e, 40, cs, ss, NULL);
    ath_engine_set_model(e, m, NULL);
    for (i = 0; i < 4; i++) ath_engine_step(e, NULL, NULL);
    n = ath_engine_matter_count(e);
    *oc = (ath_coord *)malloc(n * sizeof(ath_coord));
    *os = (ath_cf32 *)malloc(n * 4 * sizeof(ath_cf32));
    memcpy(*oc, ath_cellmap_coords(ath_engine_matter(e)), n * sizeof(ath_coord));
    memcpy(*os, ath_cellmap_states(ath_engine_matter(e)), n * 4 * sizeof(ath_cf32));
    *on = n;
    ath_engine_destroy(e);
    g_rng = saved;
}

static void test_thread_invariance(void) {
    const int64_t chans[3] = {8, 12, 8}, ks[2] = {3, 3};
    ref_layer L[2];
    ath_model *m;
    int ext;
    make_layers(L, 2, chans, ks, 1);
    m = conv_from(L, 2, ATH_ACT_GELU);
    for (ext = 0; ext < 3; ext++) {
        ath_coord *c1, *c2;
        ath_cf32 *s1, *s2;
        size_t n1, n2;
        run_threads(1, m, (ath_extent)ext, &c1, &s1, &n1);
        run_threads(2, m, (ath_extent)ext, &c2, &s2, &n2);
        CHECK(n1 == n2 && n1 > 40, "same matter count for 1 and 2 threads (%zu, %zu)", n1, n2);
        CHECK(n1 == n2 && memcmp(c1, c2, n1 * sizeof(ath_coord)) == 0 &&
                  memcmp(s1, s2, n1 * 4 * sizeof(ath_cf32)) == 0,
              "bitwise identical results for 1 and 2 threads (extent %d)", ext);
        free(c1);
        free(c2);
        free(s1);
        free(s2);
    }
    set_threads(2);
    ath_model_destroy(m);
    free_layers(L, 2);
}

static void test_extents(void) {
    const int64_t G = 8;
    ath_engine *ez = make_engine(1, ATH_BACKGROUND_VACUUM, ATH_EXTENT_ZERO, 0.0, G);
    ath_engine *ep = make_engine(1, ATH_BACKGROUND_VACUUM, ATH_EXTENT_PERIODIC, 0.0, G);
    ath_model *zero = NULL;
    ath_coord corner = {0, 0, 0}, outside = {-1, 3, 0}, c;
    ath_cf32 one = {1.0f, 0.0f}, got, vac;
    ath_vacuum v;
    ath_error err;
    size_t i, n;
    int ok;

    ath_model_zero_create(2, &zero, NULL);
    ath_engine_set_model(ez, zero, NULL);
    ath_engine_set_model(ep, zero, NULL);
    CHECK(ath_engine_add_particles(ez, 1, &outside, &one, &err) == ATH_ERR_INVALID,
          "add outside a bounded window refused");
    CHECK_OK(ath_engine_add_particles(ez, 1, &corner, &one, &e_));
    CHECK_OK(ath_engine_add_particles(ep, 1, &corner, &one, &e_));
    CHECK_OK(ath_engine_step(ez, NULL, &e_));
    CHECK_OK(ath_engine_step(ep, NULL, &e_));
    CHECK(ath_engine_matter_count(ez) == 4, "zero extent clips the neighbourhood: %zu",
          ath_engine_matter_count(ez));
    CHECK(ath_engine_matter_count(ep) == 9, "periodic extent wraps the neighbourhood: %zu",
          ath_engine_matter_count(ep));
    n = ath_engine_matter_count(ep);
    ok = 1;
    for (i = 0; i < n; i++) {
        c = ath_cellmap_coords(ath_engine_matter(ep))[i];
        if (c.x < 0 || c.x >= G || c.y < 0 || c.y >= G) ok = 0;
    }
    CHECK(ok, "periodic matter stays in the window");
    c = ath_coord_make(G - 1, G - 1, 0);
    CHECK(ath_cellmap_find(ath_engine_matter(ep), c) >= 0, "(G-1, G-1) is a wrapped neighbour of (0,0)");
    /* a vacuum-background neighbour becomes the normalised vacuum of the previous step */
    ath_vacuum_init(&v, 1, 0, 0.1, NULL);
    ath_vacuum_cell(&v, c, 0, &vac);
    ath_engine_get_states(ep, 1, &c, &got, NULL);
    {
        double nn = sqrt((double)vac.re * vac.re + (double)vac.im * vac.im);
        CHECK(close_f(got.re, vac.re / (nn + 1e-9), 1e-7) && close_f(got.im, vac.im / (nn + 1e-9), 1e-7),
              "vacuum neighbour normalised");
    }
    /* reads outside the window are zero; absent in-window cells read the vacuum at the current step */
    ath_engine_get_states(ez, 1, &outside, &got, NULL);
    CHECK(got.re == 0.0f && got.im == 0.0f, "outside the window reads 0");
    c = ath_coord_make(5, 5, 0);
    ath_engine_get_states(ez, 1, &c, &got, NULL);
    ath_vacuum_cell(&v, c, 1, &vac);
    CHECK(got.re == vac.re && got.im == vac.im, "absent cell reads vacuum(coord, step)");
    /* to_dense agrees with get_states, both branches */
    {
        ath_cf32 dense[12 * 12];
        int same = 1;
        int64_t x, y;
        CHECK_OK(ath_engine_to_dense(ez, -2, -2, 10, 10, 0, dense, &e_));
        for (y = -2; y < 10; y++)
            for (x = -2; x < 10; x++) {
                ath_coord q = {x, y, 0};
                ath_engine_get_states(ez, 1, &q, &got, NULL);
                if (memcmp(&got, &dense[(y + 2) * 12 + (x + 2)], sizeof got) != 0) same = 0;
            }
        CHECK(same, "to_dense (sparse branch) == get_states");
        CHECK_OK(ath_engine_to_dense(ez, 0, 0, 2, 2, 0, dense, &e_));
        same = 1;
        for (y = 0; y < 2; y++)
            for (x = 0; x < 2; x++) {
                ath_coord q = {x, y, 0};
                ath_engine_get_states(ez, 1, &q, &got, NULL);
                if (memcmp(&got, &dense[y * 2 + x], sizeof got) != 0) same = 0;
            }
        CHECK(same, "to_dense (lookup branch) == get_states");
    }
    {
        ath_coord in_plane1 = {3, 3, 1};
        ath_cf32 st1 = {1.0f, 1.0f};
        CHECK_OK(ath_engine_add_particles(ez, 1, &in_plane1, &st1, &e_));
        CHECK_OK(ath_engine_step(ez, NULL, &e_));
        n = ath_engine_matter_count(ez);
        ok = 1;
        for (i = 0; i < n; i++) {
            c = ath_cellmap_coords(ath_engine_matter(ez))[i];
            if (c.x < 0 || c.x >= G || c.y < 0 || c.y >= G) ok = 0;
        }
        CHECK(ok, "zero extent never keeps cells outside the window");
    }
    ath_engine_destroy(ez);
    ath_engine_destroy(ep);
    ath_model_destroy(zero);
}

/* Sparse (zero background, threshold 0) vs dense on a field that is zero outside matter. */
static void test_sparse_vs_dense(void) {
    const int64_t chans[2] = {6, 6}, ks[1] = {3};
    const int64_t G = 12, d = 3;
    ref_layer L[1];
    ath_model *m;
    int per;
    make_layers(L, 1, chans, ks, 0);
    m = conv_from(L, 1, ATH_ACT_RELU);
    for (per = 0; per < 2; per++) {
        ath_engine *e = make_engine(d, ATH_BACKGROUND_ZERO, per ? ATH_EXTENT_PERIODIC : ATH_EXTENT_ZERO,
                                    0.0, G);
        ath_dense_config dc;
        ath_dense_engine *de = NULL;
        ath_cf32 *field = (ath_cf32 *)calloc((size_t)(G * G * d), sizeof(ath_cf32));
        ath_cf32 *sp = (ath_cf32 *)malloc((size_t)(G * G * d) * sizeof(ath_cf32));
        ath_coord cs[6] = {{0, 0, 0}, {1, 0, 0}, {5, 6, 0}, {11, 11, 0}, {11, 5, 0}, {6, 6, 0}};
        ath_cf32 ss[6 * 3];
        double maxd = 0.0;
        int i, s;
        int64_t k;
        for (i = 0; i < 6 * 3; i++) {
            ss[i].re = frand();
            ss[i].im = frand();
        }
        for (i = 0; i < 6; i++)
            memcpy(field + (cs[i].y * G + cs[i].x) * d, ss + i * 3, 3 * sizeof(ath_cf32));
        ath_dense_config_default(&dc, G, d);
        dc.periodic = per;
        dc.gamma_decay = 0.02;
        CHECK_OK(ath_dense_create(&dc, &de, &e_));
        CHECK_OK(ath_dense_set_model(de, m, &e_));
        CHECK_OK(ath_dense_set_state(de, field, &e_));
        {
            ath_engine_config cfg = *ath_engine_get_config(e);
            ath_engine_destroy(e);
            cfg.gamma_decay = 0.02;
            ath_engine_create(&cfg, &e, NULL);
        }
        ath_engine_set_model(e, m, NULL);
        CHECK_OK(ath_engine_add_particles(e, 6, cs, ss, &e_));
        for (s = 0; s < 3; s++) {
            CHECK_OK(ath_engine_step(e, NULL, &e_));
            CHECK_OK(ath_dense_step(de, &e_));
        }
        CHECK_OK(ath_engine_to_dense(e, 0, 0, G, G, 0, sp, &e_));
        for (k = 0; k < G * G * d; k++) {
            double dd = fabs((double)sp[k].re - ath_dense_state(de)[k].re) +
                        fabs((double)sp[k].im - ath_dense_state(de)[k].im);
            if (dd > maxd) maxd = dd;
        }
        CHECK(maxd < 1e-6, "sparse vs dense (%s): max diff %g", per ? "periodic" : "zero", maxd);
        CHECK(ath_dense_step_count(de) == 3, "dense step count");
        ath_engine_destroy(e);
        ath_dense_destroy(de);
        free(field);
        free(sp);
    }
    ath_model_destroy(m);
    free_layers(L, 1);
}

static void test_dense_engine(void) {
    const int64_t G = 6, d = 2;
    ath_dense_config dc;
    ath_dense_engine *de = NULL;
    test_ctx t = {0.0f, 0.0f, -1, -1, 0, 0, 0, 0};
    ath_model *mm = test_model(&t, 1);
    ath_cf32 *save;
    ath_error err;
    ath_vacuum v;
    ath_cf32 vac[2];
    size_t n = (size_t)(G * G * d);

    ath_dense_config_default(&dc, G, d);
    CHECK_OK(ath_dense_create(&dc, &de, &e_));
    ath_vacuum_init(&v, d, 0, 0.1, NULL);
    ath_vacuum_cell(&v, ath_coord_make(4, 3, 0), 0, vac);
    CHECK(memcmp(vac, ath_dense_state(de) + (3 * G + 4) * d, sizeof vac) == 0,
          "dense engine starts as the vacuum at step 0");
    CHECK(ath_dense_step(de, &err) == ATH_ERR_NO_MODEL, "step without model");
    CHECK_OK(ath_dense_set_model(de, mm, &e_));
    CHECK(t.resets == 1, "set_model resets memory");
    save = (ath_cf32 *)malloc(n * sizeof(ath_cf32));
    memcpy(save, ath_dense_state(de), n * sizeof(ath_cf32));
    CHECK_OK(ath_dense_step(de, &e_));
    CHECK(t.commits == 1 && t.discards == 0, "successful step commits memory");
    t.fail_after = t.calls;
    memcpy(save, ath_dense_state(de), n * sizeof(ath_cf32));
    CHECK(ath_dense_step(de, &err) == ATH_ERR_MODEL, "failing model fails the dense step");
    CHECK(t.discards == 1 && t.commits == 1, "failed step discards memory");
    CHECK(memcmp(save, ath_dense_state(de), n * sizeof(ath_cf32)) == 0 && ath_dense_step_count(de) == 1,
          "failed dense step changes nothing");
    t.fail_after = -1;
    t.nan_after = t.calls;
    CHECK(ath_dense_step(de, &err) == ATH_ERR_NONFINITE, "NaN output fails the dense step");
    CHECK(t.discards == 2 && memcmp(save, ath_dense_state(de), n * sizeof(ath_cf32)) == 0,
          "NaN output: memory discarded, field unchanged");
    t.nan_after = -1;
    ath_dense_reset(de);
    CHECK(t.resets == 2 && ath_dense_step_count(de) == 0, "reset resets memory and step count");
    /* periodic refuses models of unknown radius */
    {
        ath_dense_engine *dp = NULL;
        dc.periodic = 1;
        CHECK_OK(ath_dense_create(&dc, &dp, &e_));
        mm->receptive_radius = -1;
        CHECK(ath_dense_set_model(dp, mm, &err) == ATH_ERR_INVALID, "periodic + unknown radius refused");
        mm->receptive_radius = 0;
        ath_dense_destroy(dp);
        dc.periodic = 0;
    }
    /* set_state refuses NaN */
    {
        ath_cf32 *bad = (ath_cf32 *)calloc(n, sizeof(ath_cf32));
        memcpy(save, ath_dense_state(de), n * sizeof(ath_cf32));
        bad[7].im = INFINITY;
        CHECK(ath_dense_set_state(de, bad, &err) == ATH_ERR_NONFINITE, "set_state refuses Inf");
        CHECK(memcmp(save, ath_dense_state(de), n * sizeof(ath_cf32)) == 0, "state unchanged");
        free(bad);
    }
    /* tools */
    {
        ath_tool_params p = {2.0, 3.0, 1.5, 1.0, 0.0};
        const ath_cf32 *f;
        int ok = 1;
        int64_t x, y, k;
        memcpy(save, ath_dense_state(de), n * sizeof(ath_cf32));
        CHECK_OK(ath_dense_apply_tool(de, ATH_TOOL_VORTEX, &p, &e_));
        f = ath_dense_state(de);
        for (y = 0; y < G; y++)
            for (x = 0; x < G; x++) {
                double dx = (double)x - 2.0, dy = (double)y - 3.0, th = atan2(dy, dx);
                int inside = dx * dx + dy * dy <= 1.5 * 1.5;
                for (k = 0; k < d; k++) {
                    const ath_cf32 a = save[(y * G + x) * d + k], b = f[(y * G + x) * d + k];
                    double er = inside ? a.re * cos(th) - a.im * sin(th) : a.re;
                    double ei = inside ? a.re * sin(th) + a.im * cos(th) : a.im;
                    if (!close_f(b.re, er, 1e-6) || !close_f(b.im, ei, 1e-6)) ok = 0;
                }
            }
        CHECK(ok, "vortex matches psi * exp(i theta) inside the disc only");
        p.strength = 0.5;
        memcpy(save, ath_dense_state(de), n * sizeof(ath_cf32));
        CHECK_OK(ath_dense_apply_tool(de, ATH_TOOL_COLLAPSE, &p, &e_));
        {
            const ath_cf32 *a = save + (3 * G + 2) * d, *b = ath_dense_state(de) + (3 * G + 2) * d;
            double na = 0, nb = 0, m0 = hypot(a[0].re, a[0].im), m1 = hypot(a[1].re, a[1].im);
            int kb = m1 > m0 ? 1 : 0;
            for (k = 0; k < d; k++) {
                na += (double)a[k].re * a[k].re + (double)a[k].im * a[k].im;
                nb += (double)b[k].re * b[k].re + (double)b[k].im * b[k].im;
            }
            CHECK(close_f(sqrt(na), sqrt(nb), 1e-6), "collapse keeps the norm");
            CHECK(hypot(b[1 - kb].re, b[1 - kb].im) < hypot(a[1 - kb].re, a[1 - kb].im) - 1e-4,
                  "collapse shrinks the other channel");
        }
        memcpy(save, ath_dense_state(de), n * sizeof(ath_cf32));
        p.strength = 1.5;
        CHECK(ath_dense_apply_tool(de, ATH_TOOL_COLLAPSE, &p, &err) == ATH_ERR_INVALID,
              "collapse strength > 1 refused");
        p.strength = 1.0;
        p.radius = 0.0;
        CHECK(ath_dense_apply_tool(de, ATH_TOOL_WAVE, &p, &err) == ATH_ERR_INVALID, "radius 0 refused");
        p.radius = 2.0;
        p.angle = NAN;
        CHECK(ath_dense_apply_tool(de, ATH_TOOL_WAVE, &p, &err) == ATH_ERR_INVALID, "NaN angle refused");
        p.angle = 0.0;
        p.strength = 1e308; /* k * dx overflows to inf: cos(inf) is NaN */
        p.radius = 3.0;
        memcpy(save, ath_dense_state(de), n * sizeof(ath_cf32));
        CHECK(ath_dense_apply_tool(de, ATH_TOOL_WAVE, &p, &err) == ATH_ERR_NONFINITE,
              "overflowing wave refused");
        CHECK(memcmp(save, ath_dense_state(de), n * sizeof(ath_cf32)) == 0, "failed tool changes nothing");
    }
    free(save);
    ath_dense_destroy(de);
    ath_model_destroy(mm);
}

/* Dense conv step vs naive reference (zero and periodic). */
static void test_dense_vs_reference(void) {
    const int64_t chans[3] = {4, 5, 4}, ks[2] = {3, 3};
    const int64_t G = 7, d = 2, C = 4;
    ref_layer L[2];
    ath_model *m;
    int per;
    make_layers(L, 2, chans, ks, 1);
    m = conv_from(L, 2, ATH_ACT_RELU);
    for (per = 0; per < 2; per++) {
        ath_dense_config dc;
        ath_dense_engine *de = NULL;
        const int64_t T = 3 * G; /* periodic reference: tile 3x3 and take the middle */
        const int64_t H = per ? T : G;
        float *in = (float *)malloc((size_t)(C * H * H) * sizeof(float));
        float *out = (float *)malloc((size_t)(C * H * H) * sizeof(float));
        ath_cf32 *psi = (ath_cf32 *)malloc((size_t)(G * G * d) * sizeof(ath_cf32));
        double maxd = 0.0;
        int64_t y, x, k;
        ath_dense_config_default(&dc, G, d);
        dc.periodic = per;
        dc.unitary = 1;
        dc.gamma_decay = 0.1;
        CHECK_OK(ath_dense_create(&dc, &de, &e_));
        CHECK_OK(ath_dense_set_model(de, m, &e_));
        memcpy(psi, ath_dense_state(de), (size_t)(G * G * d) * sizeof(ath_cf32));
        for (y = 0; y < H; y++)
            for (x = 0; x < H; x++)
                for (k = 0; k < d; k++) {
                    const ath_cf32 v = psi[((y % G) * G + (x % G)) * d + k];
                    in[(k * H + y) * H + x] = v.re;
                    in[((d + k) * H + y) * H + x] = v.im;
                }
        ref_conv(L, 2, in, H, H, out);
        CHECK_OK(ath_dense_step(de, &e_));
        for (y = 0; y < G; y++)
            for (x = 0; x < G; x++) {
                const int64_t oy = per ? y + G : y, ox = per ? x + G : x;
                float dre[2], dim[2];
                ath_cf32 expect[2];
                for (k = 0; k < d; k++) {
                    dre[k] = out[(k * H + oy) * H + ox];
                    dim[k] = out[((d + k) * H + oy) * H + ox];
                }
                ath_step_rule(psi + (y * G + x) * d, dre, dim, 1, d, 0.1, 1, expect);
                for (k = 0; k < d; k++) {
                    const ath_cf32 got = ath_dense_state(de)[(y * G + x) * d + k];
                    double dd = fabs((double)got.re - expect[k].re) + fabs((double)got.im - expect[k].im);
                    if (dd > maxd) maxd = dd;
                }
            }
        CHECK(maxd < 1e-5, "dense %s step vs naive reference: max diff %g", per ? "periodic" : "zero",
              maxd);
        ath_dense_destroy(de);
        free(in);
        free(out);
        free(psi);
    }
    ath_model_destroy(m);
    free_layers(L, 2);
}

/* Evaluated cells come out in exactly ath_coord_compare_morton order, also for
 * negative coordinates, several planes and coordinates beyond the key's 21 bits. */
static void test_morton_order(void) {
    ath_engine *e = make_engine(1, ATH_BACKGROUND_ZERO, ATH_EXTENT_UNBOUNDED, 0.0, 64);
    test_ctx t = {0.5f, 0.0f, -1, -1, 0, 0, 0, 0};
    ath_model *m = test_model(&t, 0);
    ath_coord cs[64];
    ath_cf32 ss[64];
    const ath_coord *mc;
    size_t i, n;
    int ok = 1;
    for (i = 0; i < 64; i++) {
        int64_t big = (i % 4 == 0) ? ((int64_t)1 << 22) * (int64_t)(i % 3) : 0;
        cs[i] = ath_coord_make((int64_t)(frand() * 40) + big, (int64_t)(frand() * 40) - big,
                               (int64_t)(i % 3) - 1);
        ss[i].re = 1.0f;
        ss[i].im = 0.0f;
    }
    ath_engine_set_model(e, m, NULL);
    CHECK_OK(ath_engine_add_particles(e, 64, cs, ss, &e_));
    CHECK_OK(ath_engine_step(e, NULL, &e_));
    n = ath_engine_matter_count(e);
    mc = ath_cellmap_coords(ath_engine_matter(e));
    for (i = 1; i < n; i++)
        if (ath_coord_compare_morton(&mc[i - 1], &mc[i]) >= 0) ok = 0;
    CHECK(ok && n > 64, "matter after a step is in strict Morton order (%zu cells)", n);
    ath_engine_destroy(e);
    ath_model_destroy(m);
}

static void test_exactness(void) {
    ath_engine *e = make_engine(2, ATH_BACKGROUND_ZERO, ATH_EXTENT_UNBOUNDED, 0.0, 64);
    ath_engine *ev = make_engine(2, ATH_BACKGROUND_VACUUM, ATH_EXTENT_UNBOUNDED, 0.0, 64);
    ath_model m;
    memset(&m, 0, sizeof m);
    m.receptive_radius = 1;
    CHECK(ath_engine_exactness(e, &m, 1) == 0, "exact");
    CHECK(ath_engine_exactness(e, &m, 0) == ATH_INEXACT_NOT_ZERO_PRESERVING, "not zero preserving");
    CHECK(ath_engine_exactness(ev, &m, 0) == 0, "vacuum background: zero preservation irrelevant");
    m.receptive_radius = 2;
    CHECK(ath_engine_exactness(ev, &m, 1) == ATH_INEXACT_RECEPTIVE_RADIUS, "radius > patch radius");
    m.receptive_radius = -1;
    CHECK(ath_engine_exactness(e, &m, -1) == 0, "unknown properties are not reported");
    ath_engine_destroy(e);
    ath_engine_destroy(ev);
}

int main(void) {
    set_threads(2);
    test_step_rule();
    test_conv_model();
    test_engine_basic();
    test_double_buffering();
    test_thread_invariance();
    test_extents();
    test_sparse_vs_dense();
    test_dense_engine();
    test_dense_vs_reference();
    test_exactness();
    test_morton_order();
    return check_summary();
}
