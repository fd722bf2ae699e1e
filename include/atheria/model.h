/* atheria/model.h — the model vtable (DESIGN §5) and the built-in C models.
 *
 * A model maps a float32 batch [B, 2*d_state, H, W] (channels: Re psi_0..d-1,
 * then Im psi_0..d-1) to an update of the same layout.  The engine calls
 * forward() from the stepping thread only (never from inside an OpenMP
 * region), so an implementation may take locks or the GIL.
 *
 * Ownership: whoever created an ath_model destroys it with ath_model_destroy().
 * Engines only borrow the pointer; the owner keeps it alive while in use.
 */
#ifndef ATHERIA_MODEL_H
#define ATHERIA_MODEL_H

#include "atheria/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ath_out_layout {
    ATH_OUT_FULL = 0,   /* out holds [B, C, H, W] */
    ATH_OUT_CENTER = 1  /* out holds [B, C]: the value at the centre (H/2, W/2) of each item */
} ath_out_layout;

typedef struct ath_model_ops {
    const char *name;
    /* in: C-contiguous [shape[0], shape[1], shape[2], shape[3]].
     * out: room for the same number of floats.
     * want_center: 1 if the caller only needs the centre value of each item
     *   (then returning ATH_OUT_CENTER is allowed and usually cheaper); 0 if
     *   the full map is required (ATH_OUT_CENTER is then an error).
     * On success writes *layout.  Must not keep pointers to in/out. */
    ath_status (*forward)(void *ctx, const float *in, const int64_t shape[4], float *out,
                          int want_center, ath_out_layout *layout, ath_error *err);
    /* Memory models (ConvLSTM): forward() computes the next memory into a
     * pending slot; the engine calls commit after a step succeeds and
     * discard after it fails, and reset on clear().  NULL for stateless models. */
    void (*commit_memory)(void *ctx);
    void (*discard_memory)(void *ctx);
    void (*reset_memory)(void *ctx);
    void (*destroy)(void *ctx);
    /* Committed memory for snapshots (optional; NULL for stateless models):
     * memory_size: floats of the committed memory (h then c, flattened), 0 if none;
     * memory_get:  copies exactly n = memory_size() floats out;
     * memory_set:  replaces the committed memory with n floats (h then c), dropping any
     *              pending memory; the model may check n against its shapes when it
     *              next runs (a mismatch then fails that forward, with a message). */
    int64_t (*memory_size)(void *ctx);
    ath_status (*memory_get)(void *ctx, float *out, int64_t n, ath_error *err);
    ath_status (*memory_set)(void *ctx, const float *in, int64_t n, ath_error *err);
} ath_model_ops;

typedef struct ath_model {
    const ath_model_ops *ops;
    void *ctx;
    int64_t channels;          /* 2*d_state it expects, or -1 if unknown (callables) */
    int64_t receptive_radius;  /* cells; -1 if unknown */
    int zero_preserving;       /* 1: f(0)=0 exactly; 0: not; -1 unknown (engine probes) */
    int has_memory;            /* 1 for ConvLSTM-style models */
} ath_model;

/* Calls ops->destroy(ctx) and frees the ath_model itself (NULL is a no-op). */
void ath_model_destroy(ath_model *model);
/* The error of a step whose model returned non-finite values (the step is not applied). */
ath_status ath_model_nonfinite_error(const ath_model *model, ath_error *err);

/* Convenience wrapper around ops->forward with argument checks. */
ath_status ath_model_forward(ath_model *model, const float *in, const int64_t shape[4], float *out,
                             int want_center, ath_out_layout *layout, ath_error *err);

/* delta = 0 for any input.  channels = 2*d_state (or -1: any). */
ath_status ath_model_zero_create(int64_t channels, ath_model **out, ath_error *err);

/* A stack of 2-D convolutions, exactly torch.nn.Conv2d(in, out, k, padding=k//2)
 * layers with `activation` between layers and none after the last.
 *   weights[l]: [out_l, in_l, k_l, k_l] float32 C-contiguous, k_l odd
 *   biases[l]:  [out_l] or NULL (no bias)
 * in_0 == out_last == channels.  The data is copied. */
typedef enum ath_activation {
    ATH_ACT_RELU = 0,
    ATH_ACT_TANH = 1,
    ATH_ACT_GELU = 2,   /* exact erf form, as torch.nn.GELU() */
    ATH_ACT_IDENTITY = 3
} ath_activation;

typedef struct ath_conv_layer_spec {
    int64_t out_channels;
    int64_t in_channels;
    int64_t kernel;            /* odd */
    const float *weight;       /* [out, in, k, k] */
    const float *bias;         /* [out] or NULL */
} ath_conv_layer_spec;

/* receptive_radius = sum of k_l // 2; zero_preserving = 1 when every bias is
 * absent or zero.  want_center = 1 computes only what the centre needs
 * (shrinking windows per layer): the same numbers, bit for bit, as the
 * centre of the full map.  Periodic boundaries are the engines' job (they
 * pad the input circularly by the receptive radius). */
ath_status ath_model_conv_create(size_t n_layers, const ath_conv_layer_spec *layers,
                                 ath_activation activation, ath_model **out, ath_error *err);

/* 1 for the built-in models (ZeroModel, conv stack): they accept any [B, C, H, W]
 * and the output at a pixel depends only on the input within receptive_radius
 * (with zero padding at every layer), so the sparse Engine may evaluate them on
 * tiles with halos instead of a patch per cell (same numbers). */
int ath_model_accepts_tiles(const ath_model *model);
/* The conv stack's kernel in use: "avx2+fma" or "portable" (ATHERIA_NO_SIMD=1). */
const char *ath_model_conv_kernel_name(void);

/* Runs the model once on an all-zero [1, channels, h, w] input (want_center = 1)
 * and sets *is_zero to 1 if every returned value is exactly 0 (DESIGN §3.4 (b)). */
ath_status ath_model_probe_zero(ath_model *model, int64_t channels, int64_t h, int64_t w,
                                int *is_zero, ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
