/* Model vtable helpers and the built-in C models (ZeroModel, conv stack).
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
#include "atheria/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------ vtable */

void ath_model_destroy(ath_model *model) {
    if (model == NULL) return;
    if (model->ops != NULL && model->ops->destroy != NULL) model->ops->destroy(model->ctx);
    free(model);
}

/* Largest number of floats in one forward batch (16 GiB of float32). */
#define ATH_MODEL_MAX_FLOATS ((int64_t)1 << 32)

ath_status ath_model_forward(ath_model *model, const float *in, const int64_t shape[4], float *out,
                             int want_center, ath_out_layout *layout, ath_error *err) {
    ath_out_layout lay = ATH_OUT_FULL;
    ath_status st;
    int64_t total = 1;
    int k;

    if (model == NULL || model->ops == NULL || model->ops->forward == NULL)
        return ath_error_set(err, ATH_ERR_NO_MODEL, "no model");
    if (in == NULL || out == NULL || shape == NULL || layout == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "model forward: NULL argument");
    for (k = 0; k < 4; k++) {
        if (shape[k] < 1)
            return ath_error_set(err, ATH_ERR_INVALID, "model forward: shape[%d] = %lld < 1", k,
                                 (long long)shape[k]);
        if (shape[k] > ATH_MODEL_MAX_FLOATS / total)
            return ath_error_set(err, ATH_ERR_INVALID, "model forward: batch too large");
        total *= shape[k];
    }
    if (model->channels >= 0 && shape[1] != model->channels)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "model '%s' expects %lld input channels, got %lld",
                             model->ops->name ? model->ops->name : "?", (long long)model->channels,
                             (long long)shape[1]);
    st = model->ops->forward(model->ctx, in, shape, out, want_center ? 1 : 0, &lay, err);
    if (st != ATH_OK) {
        if (err != NULL && err->code == ATH_OK)
            ath_error_set(err, st, "model '%s' failed (%s)",
                          model->ops->name ? model->ops->name : "?", ath_status_name(st));
        return st;
    }
    if (lay != ATH_OUT_FULL && lay != ATH_OUT_CENTER)
        return ath_error_set(err, ATH_ERR_MODEL, "model '%s' reported an unknown output layout",
                             model->ops->name ? model->ops->name : "?");
    if (lay == ATH_OUT_CENTER && !want_center)
        return ath_error_set(err, ATH_ERR_MODEL,
                             "model '%s' returned only the centre values where the full map "
                             "[B, C, H, W] was required",
                             model->ops->name ? model->ops->name : "?");
    *layout = lay;
    return ATH_OK;
}

ath_status ath_model_probe_zero(ath_model *model, int64_t channels, int64_t h, int64_t w,
                                int *is_zero, ath_error *err) {
    int64_t shape[4];
    size_t n;
    float *buf;
    ath_out_layout lay;
    ath_status st;
    size_t i, nout;

    if (model == NULL) return ath_error_set(err, ATH_ERR_NO_MODEL, "no model");
    if (channels < 1 || h < 1 || w < 1 || channels > ((int64_t)1 << 20) || h > 4096 || w > 4096)
        return ath_error_set(err, ATH_ERR_INVALID, "probe: bad shape");
    shape[0] = 1;
    shape[1] = channels;
    shape[2] = h;
    shape[3] = w;
    n = (size_t)(channels * h * w);
    buf = (float *)calloc(2 * n, sizeof(float));
    if (buf == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "probe: out of memory");
    st = ath_model_forward(model, buf, shape, buf + n, 1, &lay, err);
    if (st == ATH_OK) {
        nout = lay == ATH_OUT_CENTER ? (size_t)channels : n;
        *is_zero = 1;
        for (i = 0; i < nout; i++) {
            if (buf[n + i] != 0.0f) {
                *is_zero = 0;
                break;
            }
        }
    }
    free(buf);
    return st;
}

/* --------------------------------------------------------------- ZeroModel */

static ath_status zero_forward(void *ctx, const float *in, const int64_t shape[4], float *out,
                               int want_center, ath_out_layout *layout, ath_error *err) {
    size_t n;
    (void)ctx;
    (void)in;
    (void)err;
    if (want_center) {
        n = (size_t)(shape[0] * shape[1]);
        *layout = ATH_OUT_CENTER;
    } else {
        n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
        *layout = ATH_OUT_FULL;
    }
    memset(out, 0, n * sizeof(float));
    return ATH_OK;
}

static void zero_destroy(void *ctx) { (void)ctx; }

static const ath_model_ops zero_ops = {"zero", zero_forward, NULL, NULL, NULL, zero_destroy};

ath_status ath_model_zero_create(int64_t channels, ath_model **out, ath_error *err) {
    ath_model *m;
    if (out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "zero model: NULL output");
    if (channels == 0 || channels < -1 || channels > 2 * (int64_t)ATH_MAX_D_STATE)
        return ath_error_set(err, ATH_ERR_INVALID, "zero model: bad channel count %lld",
                             (long long)channels);
    m = (ath_model *)calloc(1, sizeof *m);
    if (m == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "zero model: out of memory");
    m->ops = &zero_ops;
    m->ctx = NULL;
    m->channels = channels;
    m->receptive_radius = 0;
    m->zero_preserving = 1;
    m->has_memory = 0;
    *out = m;
    return ATH_OK;
}

/* -------------------------------------------------------------- conv stack */

typedef struct conv_layer {
    int64_t out_ch, in_ch, k;
    float *wt;   /* weights transposed to [in][k][k][out] (the out loop is the vector loop) */
    float *bias; /* [out] or NULL */
} conv_layer;

typedef struct conv_ctx {
    size_t n_layers;
    conv_layer *layers;
    ath_activation act;
    int64_t max_ch;
} conv_ctx;

/* A rectangle [y0, y0+h) x [x0, x0+w) of an item, in item coordinates. */
typedef struct win {
    int64_t y0, x0, h, w;
} win;

static float activate(ath_activation act, float v) {
    switch (act) {
    case ATH_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case ATH_ACT_TANH: return (float)tanh((double)v);
    case ATH_ACT_GELU: return (float)(0.5 * (double)v * (1.0 + erf((double)v * 0.70710678118654752440)));
    case ATH_ACT_IDENTITY: return v;
    }
    return v;
}

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

/* Layer L over the output window ow, reading `in` (channels of window iw,
 * channel stride iw.h * iw.w).  Reads outside iw are zero: iw covers every
 * read inside the item, so they are exactly the reads outside the item (the
 * zero padding).  Each output value is bias + sum over (in channel, kernel
 * row, kernel column) in that order; the loop over output channels is the
 * vector loop, so the order per value never changes.  acc_base: room for
 * out_ch floats per thread.  parallel: split the output rows over threads. */
static void conv_layer_apply(const conv_layer *L, const float *in, win iw, float *out, win ow,
                             int apply_act, ath_activation act, float *acc_base, int parallel) {
    const int64_t O = L->out_ch, I = L->in_ch, k = L->k, r = k / 2;
    const int64_t area_in = iw.h * iw.w, area_out = ow.h * ow.w;
    int64_t y;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (parallel)
#endif
    for (y = 0; y < ow.h; y++) {
#ifdef _OPENMP
        float *restrict acc = acc_base + (size_t)omp_get_thread_num() * (size_t)O;
#else
        float *restrict acc = acc_base;
#endif
        const int64_t gy = ow.y0 + y;
        const int64_t ky0 = imax(0, iw.y0 - gy + r), ky1 = imin(k, iw.y0 + iw.h - gy + r);
        int64_t x;
        for (x = 0; x < ow.w; x++) {
            const int64_t gx = ow.x0 + x;
            const int64_t kx0 = imax(0, iw.x0 - gx + r), kx1 = imin(k, iw.x0 + iw.w - gx + r);
            int64_t o, i, ky, kx;
            if (L->bias != NULL)
                for (o = 0; o < O; o++) acc[o] = L->bias[o];
            else
                for (o = 0; o < O; o++) acc[o] = 0.0f;
            for (i = 0; i < I; i++) {
                const float *ip = in + i * area_in;
                for (ky = ky0; ky < ky1; ky++) {
                    const float *irow = ip + (gy + ky - r - iw.y0) * iw.w + (gx - r - iw.x0);
                    const float *wrow = L->wt + ((i * k + ky) * k) * O;
                    for (kx = kx0; kx < kx1; kx++) {
                        const float v = irow[kx];
                        const float *restrict w = wrow + kx * O;
                        for (o = 0; o < O; o++) acc[o] += w[o] * v;
                    }
                }
            }
            if (apply_act)
                for (o = 0; o < O; o++) out[o * area_out + y * ow.w + x] = activate(act, acc[o]);
            else
                for (o = 0; o < O; o++) out[o * area_out + y * ow.w + x] = acc[o];
        }
    }
    (void)parallel;
}

/* Runs every layer on one item.  wins[0] is the whole item (the input),
 * wins[l+1] the output window of layer l.  scratch: 2 * half floats for the
 * intermediate layers; acc: out_ch floats per thread. */
static void conv_item(const conv_ctx *c, const float *item, const win *wins, float *out,
                      float *scratch, size_t half, float *acc, int parallel) {
    const float *src = item;
    size_t l;
    for (l = 0; l < c->n_layers; l++) {
        const int last = l + 1 == c->n_layers;
        float *dst = last ? out : scratch + (l % 2) * half;
        conv_layer_apply(&c->layers[l], src, wins[l], dst, wins[l + 1], !last, c->act, acc, parallel);
        src = dst;
    }
}

static ath_status conv_forward(void *ctx, const float *in, const int64_t shape[4], float *out,
                               int want_center, ath_out_layout *layout, ath_error *err) {
    const conv_ctx *c = (const conv_ctx *)ctx;
    const int64_t B = shape[0], C = shape[1], H = shape[2], W = shape[3];
    const int64_t item_in = C * H * W;
    const int64_t item_out = want_center ? C : C * H * W;
    win *wins;
    float *scratch;
    size_t half, l, per_thread, n_floats;
    int nthreads = 1, split_items;
    int64_t b;

    if (C != c->layers[0].in_ch)
        return ath_error_set(err, ATH_ERR_INVALID, "conv model expects %lld channels, got %lld",
                             (long long)c->layers[0].in_ch, (long long)C);
    wins = (win *)malloc((c->n_layers + 1) * sizeof *wins);
    if (wins == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "conv model: out of memory");
    /* Output window of the last layer, then dilate backwards. */
    if (want_center) {
        wins[c->n_layers].y0 = H / 2;
        wins[c->n_layers].x0 = W / 2;
        wins[c->n_layers].h = 1;
        wins[c->n_layers].w = 1;
    } else {
        wins[c->n_layers].y0 = 0;
        wins[c->n_layers].x0 = 0;
        wins[c->n_layers].h = H;
        wins[c->n_layers].w = W;
    }
    for (l = c->n_layers; l-- > 1;) {
        const int64_t r = c->layers[l].k / 2;
        const win o = wins[l + 1];
        const int64_t y0 = imax(0, o.y0 - r), x0 = imax(0, o.x0 - r);
        const int64_t y1 = imin(H, o.y0 + o.h + r), x1 = imin(W, o.x0 + o.w + r);
        wins[l].y0 = y0;
        wins[l].x0 = x0;
        wins[l].h = y1 - y0;
        wins[l].w = x1 - x0;
    }
    wins[0].y0 = 0;
    wins[0].x0 = 0;
    wins[0].h = H;
    wins[0].w = W;

    half = 0;
    for (l = 1; l < c->n_layers; l++) {
        size_t need = (size_t)(c->layers[l - 1].out_ch * wins[l].h * wins[l].w);
        if (need > half) half = need;
    }
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
#endif
    /* Many items: threads split the items, each with its own two layer
     * buffers and accumulator row.  Few items: items one by one, threads
     * split the rows of each layer (one shared pair of layer buffers, one
     * accumulator row per thread).  Same numbers either way. */
    per_thread = 2 * half + (size_t)c->max_ch;
    split_items = nthreads > 1 && B >= 2 * (int64_t)nthreads;
    n_floats = split_items ? (size_t)nthreads * per_thread : 2 * half + (size_t)nthreads * (size_t)c->max_ch;
    scratch = (float *)malloc(n_floats * sizeof(float));
    if (scratch == NULL) {
        free(wins);
        return ath_error_set(err, ATH_ERR_NOMEM, "conv model: out of memory for %zu floats", n_floats);
    }
    if (!split_items) {
        for (b = 0; b < B; b++)
            conv_item(c, in + b * item_in, wins, out + b * item_out, scratch, half, scratch + 2 * half, 1);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
        {
            float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
            int64_t bb;
#pragma omp for schedule(static)
            for (bb = 0; bb < B; bb++)
                conv_item(c, in + bb * item_in, wins, out + bb * item_out, mine, half, mine + 2 * half, 0);
        }
#endif
    }
    free(scratch);
    free(wins);
    *layout = want_center ? ATH_OUT_CENTER : ATH_OUT_FULL;
    return ATH_OK;
}

static void conv_destroy(void *ctx) {
    conv_ctx *c = (conv_ctx *)ctx;
    size_t l;
    if (c == NULL) return;
    for (l = 0; l < c->n_layers; l++) {
        free(c->layers[l].wt);
        free(c->layers[l].bias);
    }
    free(c->layers);
    free(c);
}

static const ath_model_ops conv_ops = {"conv", conv_forward, NULL, NULL, NULL, conv_destroy};

#define ATH_CONV_MAX_CHANNELS ((int64_t)1 << 16)
#define ATH_CONV_MAX_KERNEL 255
#define ATH_CONV_MAX_WEIGHTS ((int64_t)1 << 28)

ath_status ath_model_conv_create(size_t n_layers, const ath_conv_layer_spec *layers,
                                 ath_activation activation, ath_model **out, ath_error *err) {
    conv_ctx *c;
    ath_model *m;
    size_t l;
    int64_t radius = 0, max_ch = 0;
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
        if (s->in_channels > max_ch) max_ch = s->in_channels;
        if (s->out_channels > max_ch) max_ch = s->out_channels;
    }
    if (layers[0].in_channels != layers[n_layers - 1].out_channels)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "conv model: first layer input channels (%lld) must equal last layer "
                             "output channels (%lld)",
                             (long long)layers[0].in_channels,
                             (long long)layers[n_layers - 1].out_channels);

    c = (conv_ctx *)calloc(1, sizeof *c);
    m = (ath_model *)calloc(1, sizeof *m);
    if (c != NULL) c->layers = (conv_layer *)calloc(n_layers, sizeof *c->layers);
    if (c == NULL || m == NULL || c->layers == NULL) goto nomem;
    c->n_layers = n_layers;
    c->act = activation;
    c->max_ch = max_ch;
    for (l = 0; l < n_layers; l++) {
        const ath_conv_layer_spec *s = &layers[l];
        size_t nw = (size_t)(s->out_channels * s->in_channels * s->kernel * s->kernel);
        conv_layer *L = &c->layers[l];
        L->out_ch = s->out_channels;
        L->in_ch = s->in_channels;
        L->k = s->kernel;
        L->wt = (float *)malloc(nw * sizeof(float));
        if (L->wt == NULL) goto nomem;
        {
            const int64_t O = s->out_channels, I = s->in_channels, K = s->kernel;
            int64_t o, i, kk;
            for (o = 0; o < O; o++)
                for (i = 0; i < I; i++)
                    for (kk = 0; kk < K * K; kk++)
                        L->wt[(i * K * K + kk) * O + o] = s->weight[(o * I + i) * K * K + kk];
        }
        if (s->bias != NULL) {
            L->bias = (float *)malloc((size_t)s->out_channels * sizeof(float));
            if (L->bias == NULL) goto nomem;
            memcpy(L->bias, s->bias, (size_t)s->out_channels * sizeof(float));
        }
    }
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
    free(m);
    return ath_error_set(err, ATH_ERR_NOMEM, "conv model: out of memory");
}
