/* Model vtable helpers and the built-in ZeroModel (the conv stack is model_conv.c). */
#include "atheria/alloc.h"
#include "atheria/model.h"
#include "model_internal.h"

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
    ath_free(model);
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
    buf = (float *)ath_calloc(2 * n, sizeof(float));
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
    ath_free(buf);
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
    m = (ath_model *)ath_calloc(1, sizeof *m);
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

ath_status ath_model_nonfinite_error(const ath_model *model, ath_error *err) {
    return ath_error_set(err, ATH_ERR_NONFINITE, "model '%s' returned non-finite values (NaN or Inf); step not applied",
                         model != NULL && model->ops->name ? model->ops->name : "?");
}

int ath_model_accepts_tiles(const ath_model *model) {
    return model != NULL && (ath_model_is_conv(model) || model->ops == &zero_ops);
}
