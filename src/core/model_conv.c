/* The built-in conv stack model (see model.h).
 *
 * The conv stack is exactly a sequence of torch.nn.Conv2d(in, out, k,
 * padding=k//2) layers: zero padding at the border of the item at every
 * layer, the activation between layers and none after the last.  Each
 * output value is accumulated in float32 in a fixed order (bias, then input
 * channel, kernel row, kernel column), whatever the thread count and
 * whether the full map or only the centre is computed, so results are
 * bit-identical across thread counts and between the two output modes.
 *
 * Centre mode (want_center = 1): only the centre value of each item is
 * needed, so every layer computes just the window the next layer reads
 * (the centre dilated by the remaining receptive radius, clipped to the
 * item).  For a p x p patch with p = 2R + 1 that is the whole item at the
 * first layer and a single pixel at the last. */
#include "atheria/alloc.h"
#include "atheria/model.h"
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* -------------------------------------------------------------- conv stack
 *
 * Layout: every layer reads a zero-padded HWC buffer (pixel-major, channels
 * contiguous) covering its output window dilated by the kernel radius, so
 * the inner loops have no boundary tests, and writes its output straight
 * into the padded buffer of the next layer (the last layer writes CHW).
 * Output channels are padded to a multiple of 8 (zero weights) and are the
 * vector lanes; each output value is bias + sum over (kernel row, kernel
 * column, input channel) in that order, whatever the window, the blocking,
 * the thread count or the output mode, so results are bit-identical between
 * all of them.  The AVX2+FMA kernel is picked at run time (no -march flags);
 * ATHERIA_NO_SIMD=1 forces the portable kernel (used by the tests). */

typedef struct conv_layer {
    int64_t out_ch, in_ch, k, op; /* op: out_ch rounded up to a multiple of 8 */
    float *wt;                    /* [ky][kx][in][op], zero for o >= out_ch */
    float *bias;                  /* [op], zeros when the layer has no bias */
} conv_layer;

typedef struct conv_ctx {
    size_t n_layers;
    conv_layer *layers;
    ath_activation act;
    int64_t max_op;
} conv_ctx;

/* A rectangle [y0, y0+h) x [x0, x0+w) of an item, in item coordinates. */
typedef struct win {
    int64_t y0, x0, h, w;
} win;

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

/* tanh as a 13/6 rational function (the Eigen / XNNPACK float tanh): a few
 * ulp from the true value, branch-free and vectorisable. */
#define TANH_CLAMP 7.90531110763549805f
#define TANH_A1 4.89352455891786e-03f
#define TANH_A3 6.37261928875436e-04f
#define TANH_A5 1.48572235717979e-05f
#define TANH_A7 5.12229709037114e-08f
#define TANH_A9 (-8.60467152213735e-11f)
#define TANH_A11 2.00018790482477e-13f
#define TANH_A13 (-2.76076847742355e-16f)
#define TANH_B0 4.89352518554385e-03f
#define TANH_B2 2.26843463243900e-03f
#define TANH_B4 1.18534705686654e-04f
#define TANH_B6 1.19825839466702e-06f

static float tanh_scalar(float a) {
    float x = a > TANH_CLAMP ? TANH_CLAMP : (a < -TANH_CLAMP ? -TANH_CLAMP : a);
    float x2, p, q;
    if (fabsf(a) < 0.0004f) return a;
    x2 = x * x;
    p = TANH_A13;
    p = p * x2 + TANH_A11;
    p = p * x2 + TANH_A9;
    p = p * x2 + TANH_A7;
    p = p * x2 + TANH_A5;
    p = p * x2 + TANH_A3;
    p = p * x2 + TANH_A1;
    p = p * x;
    q = TANH_B6;
    q = q * x2 + TANH_B4;
    q = q * x2 + TANH_B2;
    q = q * x2 + TANH_B0;
    return p / q;
}

static float gelu_scalar(float v) {
    return (float)(0.5 * (double)v * (1.0 + erf((double)v * 0.70710678118654752440)));
}

/* Portable kernel: nx output pixels of one row.  in: top-left of the k x k
 * window of the first pixel (pixel stride s, row stride rs); dst: pixel
 * stride ds, channels [0, op) contiguous.  act < 0: no activation. */
static void conv_run_generic(const conv_layer *L, const float *in, int64_t s, int64_t rs, int64_t nx,
                             float *dst, int64_t ds, int act) {
    const int64_t I = L->in_ch, k = L->k, op = L->op;
    int64_t x;
    for (x = 0; x < nx; x++) {
        float *restrict acc = dst + x * ds;
        const float *px = in + x * s;
        int64_t o, ky, kx, i;
        for (o = 0; o < op; o++) acc[o] = L->bias[o];
        for (ky = 0; ky < k; ky++)
            for (kx = 0; kx < k; kx++) {
                const float *ip = px + ky * rs + kx * s;
                const float *wp = L->wt + (ky * k + kx) * I * op;
                for (i = 0; i < I; i++) {
                    const float v = ip[i];
                    const float *restrict w = wp + i * op;
                    for (o = 0; o < op; o++) acc[o] += w[o] * v;
                }
            }
        if (act == ATH_ACT_RELU)
            for (o = 0; o < op; o++) acc[o] = acc[o] > 0.0f ? acc[o] : 0.0f;
        else if (act == ATH_ACT_TANH)
            for (o = 0; o < op; o++) acc[o] = tanh_scalar(acc[o]);
        else if (act == ATH_ACT_GELU)
            for (o = 0; o < op; o++) acc[o] = gelu_scalar(acc[o]);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ATH_HAVE_AVX2_KERNEL 1
#include <immintrin.h>
#define ATH_AVX2 __attribute__((target("avx2,fma")))

static inline ATH_AVX2 __m256 tanh_avx2(__m256 a) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 x = _mm256_max_ps(_mm256_min_ps(a, _mm256_set1_ps(TANH_CLAMP)), _mm256_set1_ps(-TANH_CLAMP));
    const __m256 tiny = _mm256_cmp_ps(_mm256_andnot_ps(sign, a), _mm256_set1_ps(0.0004f), _CMP_LT_OQ);
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(TANH_A13), q = _mm256_set1_ps(TANH_B6);
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(TANH_A11));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(TANH_A9));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(TANH_A7));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(TANH_A5));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(TANH_A3));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(TANH_A1));
    p = _mm256_mul_ps(p, x);
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(TANH_B4));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(TANH_B2));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(TANH_B0));
    return _mm256_blendv_ps(_mm256_div_ps(p, q), a, tiny);
}

/* NX pixels x NV vectors of 8 output channels starting at channel g0,
 * accumulators in registers. */
#define ATH_DEF_BLOCK(NV, NX)                                                                          \
    static inline ATH_AVX2 void blk_##NV##_##NX(const conv_layer *L, const float *in, int64_t s,       \
                                                 int64_t rs, int64_t g0, float *dst, int64_t ds,       \
                                                 int act) {                                            \
        const int64_t I = L->in_ch, k = L->k, op = L->op;                                              \
        __m256 acc[NX][NV];                                                                            \
        int64_t ky, kx, i;                                                                             \
        int j, v;                                                                                      \
        _Pragma("GCC unroll 8") for (j = 0; j < NX; j++)                                                                       \
            _Pragma("GCC unroll 8") for (v = 0; v < NV; v++) acc[j][v] = _mm256_loadu_ps(L->bias + g0 + 8 * v);                \
        for (ky = 0; ky < k; ky++)                                                                     \
            for (kx = 0; kx < k; kx++) {                                                               \
                const float *ip = in + ky * rs + kx * s;                                               \
                const float *wp = L->wt + (ky * k + kx) * I * op + g0;                                 \
                for (i = 0; i < I; i++) {                                                              \
                    __m256 w[NV];                                                                      \
                    _Pragma("GCC unroll 8") for (v = 0; v < NV; v++) w[v] = _mm256_loadu_ps(wp + i * op + 8 * v);              \
                    _Pragma("GCC unroll 8") for (j = 0; j < NX; j++) {                                                         \
                        const __m256 b = _mm256_broadcast_ss(ip + j * s + i);                          \
                        _Pragma("GCC unroll 8") for (v = 0; v < NV; v++) acc[j][v] = _mm256_fmadd_ps(w[v], b, acc[j][v]);      \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        _Pragma("GCC unroll 8") for (j = 0; j < NX; j++)                                                                       \
            _Pragma("GCC unroll 8") for (v = 0; v < NV; v++) {                                                                 \
                __m256 a = acc[j][v];                                                                  \
                if (act == ATH_ACT_RELU)                                                               \
                    a = _mm256_max_ps(a, _mm256_setzero_ps());                                         \
                else if (act == ATH_ACT_TANH)                                                          \
                    a = tanh_avx2(a);                                                                  \
                _mm256_storeu_ps(dst + j * ds + g0 + 8 * v, a);                                        \
            }                                                                                          \
    }

ATH_DEF_BLOCK(1, 8)
ATH_DEF_BLOCK(1, 1)
ATH_DEF_BLOCK(2, 4)
ATH_DEF_BLOCK(2, 1)
ATH_DEF_BLOCK(3, 3)
ATH_DEF_BLOCK(3, 1)
ATH_DEF_BLOCK(4, 2)
ATH_DEF_BLOCK(4, 1)

static ATH_AVX2 void conv_run_avx2(const conv_layer *L, const float *in, int64_t s, int64_t rs, int64_t nx,
                                   float *dst, int64_t ds, int act) {
    const int64_t op = L->op;
    int64_t g0;
    for (g0 = 0; g0 < op;) {
        const int64_t nv = (op - g0) / 8 >= 4 ? 4 : (op - g0) / 8;
        int64_t x = 0;
        switch (nv) {
        case 1:
            for (; x + 8 <= nx; x += 8) blk_1_8(L, in + x * s, s, rs, g0, dst + x * ds, ds, act);
            for (; x < nx; x++) blk_1_1(L, in + x * s, s, rs, g0, dst + x * ds, ds, act);
            break;
        case 2:
            for (; x + 4 <= nx; x += 4) blk_2_4(L, in + x * s, s, rs, g0, dst + x * ds, ds, act);
            for (; x < nx; x++) blk_2_1(L, in + x * s, s, rs, g0, dst + x * ds, ds, act);
            break;
        case 3:
            for (; x + 3 <= nx; x += 3) blk_3_3(L, in + x * s, s, rs, g0, dst + x * ds, ds, act);
            for (; x < nx; x++) blk_3_1(L, in + x * s, s, rs, g0, dst + x * ds, ds, act);
            break;
        default:
            for (; x + 2 <= nx; x += 2) blk_4_2(L, in + x * s, s, rs, g0, dst + x * ds, ds, act);
            for (; x < nx; x++) blk_4_1(L, in + x * s, s, rs, g0, dst + x * ds, ds, act);
            break;
        }
        g0 += 8 * nv;
    }
    if (act == ATH_ACT_GELU) {
        int64_t x, o;
        for (x = 0; x < nx; x++)
            for (o = 0; o < op; o++) dst[x * ds + o] = gelu_scalar(dst[x * ds + o]);
    }
}
#endif

/* Which kernel: -1 not decided yet, 0 portable, 1 AVX2+FMA.  Decided once
 * (ath_model_conv_create), before any forward can run. */
static int g_conv_kernel = -1;

static void conv_pick_kernel(void) {
    int k = 0;
    const char *env;
    if (g_conv_kernel >= 0) return;
#ifdef ATH_HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    k = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    env = getenv("ATHERIA_NO_SIMD");
    if (env != NULL && env[0] != '\0' && env[0] != '0') k = 0;
    g_conv_kernel = k;
}

const char *ath_model_conv_kernel_name(void) {
    conv_pick_kernel();
    return g_conv_kernel == 1 ? "avx2+fma" : "portable";
}

static void conv_run(const conv_layer *L, const float *in, int64_t s, int64_t rs, int64_t nx, float *dst,
                     int64_t ds, int act) {
#ifdef ATH_HAVE_AVX2_KERNEL
    if (g_conv_kernel == 1) {
        conv_run_avx2(L, in, s, rs, nx, dst, ds, act);
        return;
    }
#endif
    conv_run_generic(L, in, s, rs, nx, dst, ds, act);
}

/* Geometry of one forward: for layer l, its output window out[l] (item
 * coordinates), its padded input region pad[l] = out[l] dilated by r_l
 * (unclipped) and the pixel stride of that buffer. */
typedef struct conv_plan {
    size_t n;
    win *out, *pad;
    int64_t *stride;
    size_t buf_floats; /* largest padded buffer */
} conv_plan;

static void conv_plan_free(conv_plan *p) {
    ath_free(p->out);
    ath_free(p->pad);
    ath_free(p->stride);
}

static ath_status conv_plan_make(const conv_ctx *c, int64_t H, int64_t W, int want_center, conv_plan *p,
                                 ath_error *err) {
    const size_t n = c->n_layers;
    size_t l;
    p->n = n;
    p->out = (win *)ath_malloc(n * sizeof(win));
    p->pad = (win *)ath_malloc(n * sizeof(win));
    p->stride = (int64_t *)ath_malloc(n * sizeof(int64_t));
    if (p->out == NULL || p->pad == NULL || p->stride == NULL) {
        conv_plan_free(p);
        return ath_error_set(err, ATH_ERR_NOMEM, "conv model: out of memory");
    }
    if (want_center) {
        p->out[n - 1].y0 = H / 2;
        p->out[n - 1].x0 = W / 2;
        p->out[n - 1].h = 1;
        p->out[n - 1].w = 1;
    } else {
        p->out[n - 1].y0 = 0;
        p->out[n - 1].x0 = 0;
        p->out[n - 1].h = H;
        p->out[n - 1].w = W;
    }
    p->buf_floats = 0;
    for (l = n; l-- > 0;) {
        const int64_t r = c->layers[l].k / 2;
        const win o = p->out[l];
        size_t need;
        p->pad[l].y0 = o.y0 - r;
        p->pad[l].x0 = o.x0 - r;
        p->pad[l].h = o.h + 2 * r;
        p->pad[l].w = o.w + 2 * r;
        p->stride[l] = l == 0 ? c->layers[0].in_ch : c->layers[l - 1].op;
        need = (size_t)(p->pad[l].h * p->pad[l].w * p->stride[l]);
        if (need > p->buf_floats) p->buf_floats = need;
        if (l > 0) { /* the previous layer computes the in-item part of this layer's padded input */
            const int64_t y0 = imax(0, p->pad[l].y0), x0 = imax(0, p->pad[l].x0);
            const int64_t y1 = imin(H, p->pad[l].y0 + p->pad[l].h), x1 = imin(W, p->pad[l].x0 + p->pad[l].w);
            p->out[l - 1].y0 = y0;
            p->out[l - 1].x0 = x0;
            p->out[l - 1].h = y1 - y0;
            p->out[l - 1].w = x1 - x0;
        }
    }
    return ATH_OK;
}

/* Zeroes the part of padded buffer row qy (region pd, stride s) outside the item. */
static void zero_outside_row(float *buf, win pd, int64_t s, int64_t qy, int64_t H, int64_t W) {
    const int64_t y = pd.y0 + qy;
    float *row = buf + qy * pd.w * s;
    if (y < 0 || y >= H) {
        memset(row, 0, (size_t)(pd.w * s) * sizeof(float));
        return;
    }
    if (pd.x0 < 0) memset(row, 0, (size_t)(imin(-pd.x0, pd.w) * s) * sizeof(float));
    if (pd.x0 + pd.w > W) {
        const int64_t from = imax(0, W - pd.x0);
        memset(row + from * s, 0, (size_t)((pd.w - from) * s) * sizeof(float));
    }
}

/* Row qy of layer 0's padded input from the CHW item. */
static void fill_input_row(const float *item, int64_t C, int64_t H, int64_t W, float *buf, win pd, int64_t qy) {
    const int64_t y = pd.y0 + qy;
    int64_t qx, ch;
    zero_outside_row(buf, pd, C, qy, H, W);
    if (y < 0 || y >= H) return;
    for (qx = imax(0, -pd.x0); qx < pd.w && pd.x0 + qx < W; qx++) {
        const int64_t x = pd.x0 + qx;
        float *dst = buf + (qy * pd.w + qx) * C;
        for (ch = 0; ch < C; ch++) dst[ch] = item[(ch * H + y) * W + x];
    }
}

/* Output row y (index within out[l]) of layer l.  src: padded input of l.
 * Not last: into dst = padded input of l+1.  Last: CHW into out_item via
 * rowbuf (room for out[l].w * op floats). */
static void conv_layer_row(const conv_ctx *c, const conv_plan *p, size_t l, const float *src, float *dst,
                           float *out_item, int64_t H, int64_t W, int want_center, float *rowbuf, int64_t y) {
    const conv_layer *L = &c->layers[l];
    const win o = p->out[l], pd = p->pad[l];
    const int64_t s = p->stride[l], rs = pd.w * s;
    const int last = l + 1 == p->n;
    /* the k x k window of output (o.y0 + y, o.x0) starts at padded (y, o.x0 - pd.x0 - r + r) */
    const float *in = src + (y + (o.y0 - pd.y0) - L->k / 2) * rs + (o.x0 - pd.x0 - L->k / 2) * s;
    if (!last) {
        const win nd = p->pad[l + 1];
        float *d = dst + ((o.y0 + y - nd.y0) * nd.w + (o.x0 - nd.x0)) * L->op;
        conv_run(L, in, s, rs, o.w, d, L->op, (int)c->act);
    } else {
        const int64_t O = L->out_ch;
        int64_t x, ch;
        conv_run(L, in, s, rs, o.w, rowbuf, L->op, -1);
        if (want_center) {
            for (ch = 0; ch < O; ch++) out_item[ch] = rowbuf[ch];
        } else {
            for (ch = 0; ch < O; ch++) {
                float *orow = out_item + (ch * H + o.y0 + y) * W + o.x0;
                for (x = 0; x < o.w; x++) orow[x] = rowbuf[x * L->op + ch];
            }
        }
    }
}

/* One item, sequentially.  bufs: two buffers of p->buf_floats; rowbuf. */
static void conv_item_seq(const conv_ctx *c, const conv_plan *p, const float *item, float *out_item, int64_t H,
                          int64_t W, int want_center, float *bufs, float *rowbuf) {
    const size_t half = p->buf_floats;
    size_t l;
    int64_t q, y;
    for (q = 0; q < p->pad[0].h; q++) fill_input_row(item, c->layers[0].in_ch, H, W, bufs, p->pad[0], q);
    for (l = 0; l < p->n; l++) {
        float *src = bufs + (l % 2) * half, *dst = bufs + ((l + 1) % 2) * half;
        if (l + 1 < p->n)
            for (q = 0; q < p->pad[l + 1].h; q++)
                zero_outside_row(dst, p->pad[l + 1], p->stride[l + 1], q, H, W);
        for (y = 0; y < p->out[l].h; y++)
            conv_layer_row(c, p, l, src, dst, out_item, H, W, want_center, rowbuf, y);
    }
}

/* One item, rows split over the threads (shared buffers). */
static void conv_item_par(const conv_ctx *c, const conv_plan *p, const float *item, float *out_item, int64_t H,
                          int64_t W, int want_center, float *bufs, float *rowbufs, size_t rowbuf_floats) {
    const size_t half = p->buf_floats;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        size_t l;
#ifdef _OPENMP
        float *rowbuf = rowbufs + (size_t)omp_get_thread_num() * rowbuf_floats;
#else
        float *rowbuf = rowbufs;
#endif
        int64_t q, y;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (q = 0; q < p->pad[0].h; q++) fill_input_row(item, c->layers[0].in_ch, H, W, bufs, p->pad[0], q);
        for (l = 0; l < p->n; l++) {
            float *src = bufs + (l % 2) * half, *dst = bufs + ((l + 1) % 2) * half;
            if (l + 1 < p->n) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (q = 0; q < p->pad[l + 1].h; q++)
                    zero_outside_row(dst, p->pad[l + 1], p->stride[l + 1], q, H, W);
            }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (y = 0; y < p->out[l].h; y++)
                conv_layer_row(c, p, l, src, dst, out_item, H, W, want_center, rowbuf, y);
        }
    }
    (void)rowbuf_floats;
}

static ath_status conv_forward(void *ctx, const float *in, const int64_t shape[4], float *out,
                               int want_center, ath_out_layout *layout, ath_error *err) {
    const conv_ctx *c = (const conv_ctx *)ctx;
    const int64_t B = shape[0], C = shape[1], H = shape[2], W = shape[3];
    const int64_t item_in = C * H * W;
    const int64_t item_out = want_center ? C : C * H * W;
    conv_plan plan = {0};
    float *scratch;
    size_t per_thread, rowbuf_floats, n_floats;
    int nthreads = 1, split_items;
    int64_t b;
    ath_status st;

    if (C != c->layers[0].in_ch)
        return ath_error_set(err, ATH_ERR_INVALID, "conv model expects %lld channels, got %lld",
                             (long long)c->layers[0].in_ch, (long long)C);
    conv_pick_kernel();
    st = conv_plan_make(c, H, W, want_center, &plan, err);
    if (st != ATH_OK) return st;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
#endif
    /* Many items: threads split the items, each with its own buffers.  Few
     * items: items one by one, threads split the rows of each layer.  Same
     * numbers either way. */
    rowbuf_floats = (size_t)(W * c->max_op);
    per_thread = 2 * plan.buf_floats + rowbuf_floats;
    /* small batches stay on the calling thread: waking a team costs more than the work */
    if (B * H * W < 8192) nthreads = 1;
    split_items = nthreads > 1 && B >= 2 * (int64_t)nthreads;
    n_floats = split_items ? (size_t)nthreads * per_thread
                           : 2 * plan.buf_floats + (size_t)nthreads * rowbuf_floats;
    scratch = (float *)ath_malloc(n_floats * sizeof(float));
    if (scratch == NULL) {
        conv_plan_free(&plan);
        return ath_error_set(err, ATH_ERR_NOMEM, "conv model: out of memory for %zu floats", n_floats);
    }
    if (!split_items) {
        for (b = 0; b < B; b++) {
            if (nthreads > 1 && plan.out[0].h > 1)
                conv_item_par(c, &plan, in + b * item_in, out + b * item_out, H, W, want_center, scratch,
                              scratch + 2 * plan.buf_floats, rowbuf_floats);
            else
                conv_item_seq(c, &plan, in + b * item_in, out + b * item_out, H, W, want_center, scratch,
                              scratch + 2 * plan.buf_floats);
        }
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
        {
            float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
            int64_t bb;
#pragma omp for schedule(static)
            for (bb = 0; bb < B; bb++)
                conv_item_seq(c, &plan, in + bb * item_in, out + bb * item_out, H, W, want_center, mine,
                              mine + 2 * plan.buf_floats);
        }
#endif
    }
    ath_free(scratch);
    conv_plan_free(&plan);
    *layout = want_center ? ATH_OUT_CENTER : ATH_OUT_FULL;
    return ATH_OK;
}

static void conv_destroy(void *ctx) {
    conv_ctx *c = (conv_ctx *)ctx;
    size_t l;
    if (c == NULL) return;
    for (l = 0; l < c->n_layers; l++) {
        ath_free(c->layers[l].wt);
        ath_free(c->layers[l].bias);
    }
    ath_free(c->layers);
    ath_free(c);
}

static const ath_model_ops conv_ops = {"conv", conv_forward, NULL, NULL, NULL, conv_destroy};

int ath_model_is_conv(const ath_model *model) { return model != NULL && model->ops == &conv_ops; }

#define ATH_CONV_MAX_CHANNELS ((int64_t)1 << 16)
#define ATH_CONV_MAX_KERNEL 255
#define ATH_CONV_MAX_WEIGHTS ((int64_t)1 << 28)

ath_status ath_model_conv_create(size_t n_layers, const ath_conv_layer_spec *layers,
                                 ath_activation activation, ath_model **out, ath_error *err) {
    conv_ctx *c;
    ath_model *m;
    size_t l;
    int64_t radius = 0;
    int zero_preserving = 1;

    if (out == NULL || layers == NULL || n_layers == 0)
        return ath_error_set(err, ATH_ERR_INVALID, "conv model: need at least one layer");
    if (n_layers > 1024) return ath_error_set(err, ATH_ERR_INVALID, "conv model: too many layers");
    if (activation != ATH_ACT_RELU && activation != ATH_ACT_TANH && activation != ATH_ACT_GELU &&
        activation != ATH_ACT_IDENTITY)
        return ath_error_set(err, ATH_ERR_INVALID, "conv model: unknown activation %d",
                             (int)activation);
    for (l = 0; l < n_layers; l++) {
        const ath_conv_layer_spec *s = &layers[l];
        int64_t nw, i;
        if (s->out_channels < 1 || s->in_channels < 1 || s->out_channels > ATH_CONV_MAX_CHANNELS ||
            s->in_channels > ATH_CONV_MAX_CHANNELS)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "conv model: layer %zu has bad channel counts (out %lld, in %lld)",
                                 l, (long long)s->out_channels, (long long)s->in_channels);
        if (s->kernel < 1 || s->kernel % 2 == 0 || s->kernel > ATH_CONV_MAX_KERNEL)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "conv model: layer %zu kernel size must be odd in [1, %d], got %lld",
                                 l, ATH_CONV_MAX_KERNEL, (long long)s->kernel);
        if (l > 0 && s->in_channels != layers[l - 1].out_channels)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "conv model: layer %zu takes %lld channels but layer %zu gives %lld",
                                 l, (long long)s->in_channels, l - 1,
                                 (long long)layers[l - 1].out_channels);
        if (s->weight == NULL)
            return ath_error_set(err, ATH_ERR_INVALID, "conv model: layer %zu has no weight", l);
        if (s->out_channels * s->in_channels > ATH_CONV_MAX_WEIGHTS / (s->kernel * s->kernel))
            return ath_error_set(err, ATH_ERR_INVALID, "conv model: layer %zu is too large", l);
        nw = s->out_channels * s->in_channels * s->kernel * s->kernel;
        for (i = 0; i < nw; i++)
            if (!isfinite(s->weight[i]))
                return ath_error_set(err, ATH_ERR_NONFINITE,
                                     "conv model: layer %zu weight has a non-finite value", l);
        if (s->bias != NULL)
            for (i = 0; i < s->out_channels; i++) {
                if (!isfinite(s->bias[i]))
                    return ath_error_set(err, ATH_ERR_NONFINITE,
                                         "conv model: layer %zu bias has a non-finite value", l);
                if (s->bias[i] != 0.0f) zero_preserving = 0;
            }
        radius += s->kernel / 2;
    }
    if (layers[0].in_channels != layers[n_layers - 1].out_channels)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "conv model: first layer input channels (%lld) must equal last layer "
                             "output channels (%lld)",
                             (long long)layers[0].in_channels,
                             (long long)layers[n_layers - 1].out_channels);

    c = (conv_ctx *)ath_calloc(1, sizeof *c);
    m = (ath_model *)ath_calloc(1, sizeof *m);
    if (c != NULL) c->layers = (conv_layer *)ath_calloc(n_layers, sizeof *c->layers);
    if (c == NULL || m == NULL || c->layers == NULL) goto nomem;
    c->n_layers = n_layers;
    c->act = activation;
    c->max_op = 8;
    for (l = 0; l < n_layers; l++) {
        const ath_conv_layer_spec *s = &layers[l];
        const int64_t O = s->out_channels, I = s->in_channels, K = s->kernel, OP = (O + 7) / 8 * 8;
        conv_layer *L = &c->layers[l];
        int64_t o, i, kk;
        L->out_ch = O;
        L->in_ch = I;
        L->k = K;
        L->op = OP;
        if (OP > c->max_op) c->max_op = OP;
        L->wt = (float *)ath_calloc((size_t)(K * K * I * OP), sizeof(float));
        L->bias = (float *)ath_calloc((size_t)OP, sizeof(float));
        if (L->wt == NULL || L->bias == NULL) goto nomem;
        for (o = 0; o < O; o++)
            for (i = 0; i < I; i++)
                for (kk = 0; kk < K * K; kk++) L->wt[(kk * I + i) * OP + o] = s->weight[(o * I + i) * K * K + kk];
        if (s->bias != NULL) memcpy(L->bias, s->bias, (size_t)O * sizeof(float));
    }
    conv_pick_kernel();
    m->ops = &conv_ops;
    m->ctx = c;
    m->channels = layers[0].in_channels;
    m->receptive_radius = radius;
    m->zero_preserving = zero_preserving;
    m->has_memory = 0;
    *out = m;
    return ATH_OK;

nomem:
    if (c != NULL && c->layers != NULL) c->n_layers = n_layers; /* layers are zeroed: free is safe */
    conv_destroy(c);
    ath_free(m);
    return ath_error_set(err, ATH_ERR_NOMEM, "conv model: out of memory");
}
