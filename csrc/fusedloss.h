/* fusedloss C API: one function per loss and precision, plain pointers + sizes.
 *
 * Every kernel computes the loss and, optionally, its gradient in one pass over
 * contiguous data.  Conventions shared by all entry points:
 *   - sizes are fl_index (ptrdiff_t), so arrays beyond 2^31 elements work;
 *   - loss_out (per row / per element losses) may be NULL;
 *   - grad may be NULL (loss only), or may be exactly the logits/input pointer
 *     (the gradient then overwrites it in place); no other aliasing is allowed;
 *   - every gradient value is multiplied by grad_scale (1/denominator for a
 *     mean reduction, 1 otherwise);
 *   - the return value is the sum of the per-row / per-element losses,
 *     accumulated in double over fixed chunks combined in a fixed order, so it
 *     does not depend on n_threads;
 *   - inputs are assumed valid (the Python layer validates); no kernel
 *     allocates, raises, or reads outside the sizes it is given.
 */
#ifndef FUSEDLOSS_H
#define FUSEDLOSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef ptrdiff_t fl_index;

/* Broadcast description of an optional weight over a flat element index i.
 * Simple form (ndim == 0):
 *   weight(i) = ptr[(i / cols) * rs + (i % cols) * cs],  cs in {0, 1}.
 * General form (ndim > 0), for any broadcast pattern, read through strides
 * without a materialised copy: with (k_0, ..., k_{ndim-1}) the C-order
 * multi-index of i in shape[0..ndim),
 *   weight(i) = ptr[k_0 stride[0] + ... + k_{ndim-1} stride[ndim-1]],
 * strides in elements, >= 0 (0 along broadcast axes); shape's product is the
 * element count.  ptr == NULL means every weight is 1. */
#define FL_BCAST_MAXDIM 64
typedef struct {
    const void *ptr;
    fl_index cols;
    fl_index rs;
    fl_index cs;
    int ndim;
    const fl_index *shape;
    const fl_index *stride;
} fl_bcast;

#define FL_DECLARE_KERNELS(T, S)                                                                 \
    /* Checks class-index targets.  Returns -1 when every target is in [0, n_classes) or  \
     * equals ignore_index, else the flat position of the first one that is not.  On      \
     * success *denom is the sum of weight[t] (the count when weight is NULL) over the     \
     * targets that are not ignored. */                                                    \
    fl_index fl_ce_check_targets_##S(const int64_t *target, fl_index n_rows,                 \
                                     fl_index n_classes, int64_t ignore_index,              \
                                     const T *weight, double *denom);                       \
    /* Softmax cross-entropy with class-index targets over n_rows x n_classes logits.     \
     * Each index is read once and bounds-checked where it is used: one that is out of     \
     * range (changed by another thread since fl_ce_check_targets) gives that row a NaN    \
     * loss and gradient, and *bad_pos (when not NULL) receives the first such row, or -1, \
     * and *bad_value (when not NULL) the index read there. */                             \
    double fl_ce_index_##S(const T *logits, const int64_t *target, fl_index n_rows,          \
                           fl_index n_classes, const T *weight, int64_t ignore_index,       \
                           double label_smoothing, double grad_scale, T *loss_out, T *grad, \
                           int n_threads, fl_index *bad_pos, int64_t *bad_value);           \
    /* Softmax cross-entropy with class-probability targets (same shape as logits). */     \
    double fl_ce_prob_##S(const T *logits, const T *target, fl_index n_rows,                 \
                          fl_index n_classes, const T *weight, double label_smoothing,      \
                          double grad_scale, T *loss_out, T *grad, int n_threads);          \
    /* Binary cross-entropy with logits; weight and pos_weight are broadcast views. */     \
    double fl_bce_##S(const T *logits, const T *target, fl_index n, fl_bcast weight,         \
                      fl_bcast pos_weight, double grad_scale, T *loss_out, T *grad,         \
                      int n_threads);                                                       \
    /* Sigmoid focal loss; alpha < 0 disables the alpha weighting. */                      \
    double fl_focal_##S(const T *logits, const T *target, fl_index n, double alpha,          \
                        double gamma, double grad_scale, T *loss_out, T *grad,              \
                        int n_threads);                                                     \
    /* Huber loss (delta > 0); the gradient is with respect to input. */                   \
    double fl_huber_##S(const T *input, const T *target, fl_index n, double delta,           \
                        double grad_scale, T *loss_out, T *grad, int n_threads);            \
    /* Smooth-L1 loss (beta >= 0; beta == 0 is L1 with sign(0) == 0). */                   \
    double fl_smooth_l1_##S(const T *input, const T *target, fl_index n, double beta,        \
                            double grad_scale, T *loss_out, T *grad, int n_threads);

FL_DECLARE_KERNELS(float, f32)
FL_DECLARE_KERNELS(double, f64)

/* Runtime SIMD dispatch.  Every kernel above is compiled once per SIMD target
 * (baseline, plus avx2 and avx512 on x86-64); the best one this CPU supports is
 * chosen on first use.  fl_target_set() forces a target by name ("best" picks
 * the best again): 0 on success, -1 for an unknown or not compiled name, -2
 * when this CPU cannot run it.  Call it before any kernel runs concurrently. */
int fl_target_set(const char *name);
const char *fl_target_selected(void);
/* Space-separated lists, best last. */
const char *fl_target_compiled(void);
const char *fl_target_supported(void);

/* Interruption.  The hook is called by the thread that called a kernel,
 * between pieces of the work, at most about every 50 ms, while the call runs;
 * a non-zero answer stops the call early: it returns NaN, and what it already
 * wrote to loss_out / grad stays written (the rest is unspecified).  NULL
 * (the default) never stops.  Set it once, before kernels run. */
typedef int (*fl_interrupt_fn)(void);
void fl_set_interrupt_hook(fl_interrupt_fn hook);

/* Build information. */
const char *fl_compiler(void);

#ifdef __cplusplus
}
#endif

#endif /* FUSEDLOSS_H */
