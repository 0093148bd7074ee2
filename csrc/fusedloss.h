/* fusedloss C API: every loss kernel has one calling convention,
 *
 *     int fl_<name>_<f32|f64>(const fl_args *args, fl_result *result);
 *
 * with the kernels listed in losses.def, plus fl_run() to call one by id.
 * Every kernel computes the loss and, optionally, its gradient (and, where it
 * has one, its hessian) in one pass over contiguous data.  Conventions:
 *   - sizes are fl_index (ptrdiff_t), so arrays beyond 2^31 elements work;
 *   - loss_out (per row / per element losses) may be NULL;
 *   - grad[k] may be NULL (no gradient for input k), or exactly input[k] (the
 *     gradient then overwrites it in place); no other aliasing is allowed;
 *     hess may be NULL; it never aliases anything;
 *   - every gradient and hessian value is multiplied by grad_scale, and for
 *     reduction FL_REDUCE_MEAN also by 1 / the mean's denominator (0 for a
 *     mean over nothing, whose gradient is then all zeros: the kernel writes
 *     zeros without reading the inputs);
 *   - result->acc[0] is the sum of the per-row / per-element losses and
 *     acc[1] the mean's denominator as the loss defines it (the element
 *     count, the rows, or the summed class weights of the rows that count);
 *     sums are accumulated in double over fixed chunks combined in a fixed
 *     order, so they do not depend on n_threads or the SIMD target;
 *   - inputs are assumed valid except class indices, which the class-index
 *     kernels check themselves (see fl_ce_index); no kernel allocates or
 *     reads outside the sizes it is given.
 * Return value: FL_OK, or one of the FL_E_* codes below.
 */
#ifndef FUSEDLOSS_H
#define FUSEDLOSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef ptrdiff_t fl_index;

/* Limits shared with the Python layer (which reads them from here). */
#define FL_MAX_THREADS 1024 /* n_threads above this is treated as this */
#define FL_MAX_INPUTS 3     /* differentiable inputs of one loss */
#define FL_MAX_PARAMS 4     /* scalar parameters of one loss */
#define FL_NACC 4           /* float64 accumulators a call returns */

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

enum { FL_REDUCE_MEAN = 0, FL_REDUCE_SUM = 1, FL_REDUCE_NONE = 2 };

/* Status codes. */
enum {
    FL_OK = 0,
    FL_E_INDEX = 1,       /* a class index out of range: result->bad_pos / bad_value */
    FL_E_INTERRUPTED = 2, /* stopped by the interrupt hook; acc[0] is NaN */
    FL_E_UNSUPPORTED = 3, /* an option this kernel does not implement (e.g. hess) */
    FL_E_UNKNOWN = 4,     /* fl_run: no kernel with that id */
    FL_E_DOMAIN = 5,      /* a value outside the loss's domain (probabilities outside
                             [0, 1], labels outside {-1, +1}): result->bad_pos, and
                             bad_value the argument (0 the input, 1 the target) */
    FL_E_NOMEM = 6        /* scratch memory could not be allocated (the strided class
                             layouts of long rows); what was written is unspecified */
};

/* flags */
#define FL_NO_CHECK                                                                                \
    1                   /* class indices, domains: skip the check pass (class-index                \
                           reductions must not be mean) */
#define FL_CHECK_ONLY 2 /* class indices: run only the check pass (acc[1], bad_pos) */

/* The arguments of every kernel.  Zero-initialise, then set what applies
 * (grad_scale too: 0 makes every gradient 0). */
typedef struct {
    fl_index n;                       /* elements (element-wise losses) or rows (class-axis) */
    fl_index n_classes;               /* class-axis losses: classes per row */
    fl_index class_stride;            /* class-axis: elements between a row's consecutive classes
                                         (P); 0 or 1 mean the class axis is last.  P > 1: the
                                         data is a C-contiguous (n / P, n_classes, P) array (a
                                         class axis in the middle), rows r = o P + i in that
                                         order (targets, losses: shape (n / P, P)); n must be a
                                         multiple of P (else FL_E_UNSUPPORTED) */
    const void *input[FL_MAX_INPUTS]; /* input[0]: logits / input; more for multi-input */
    const void *target;               /* the compute dtype (input's shape) or int64 class indices */
    fl_bcast weight;                  /* element-wise: a weight per element; class-axis: the
                                         class weights (ptr, n_classes of them), or NULL */
    fl_bcast weight2;                 /* a second broadcast factor (BCE's pos_weight) */
    int64_t ignore_index;             /* class-index targets equal to it are ignored */
    double param[FL_MAX_PARAMS];      /* the loss's scalar parameters, in registry order */
    double grad_scale;                /* factor on every gradient / hessian value (usually 1) */
    int reduction;                    /* FL_REDUCE_*: only MEAN changes what a kernel does */
    int flags;                        /* FL_NO_CHECK, FL_CHECK_ONLY */
    int n_threads;                    /* threads to use, caller included (<= 1: the caller only) */
    void *loss_out;                   /* per element / row losses, or NULL */
    void *grad[FL_MAX_INPUTS];        /* gradient per input, or NULL */
    void *hess;                       /* diagonal hessian with respect to input[0], or NULL */
} fl_args;

typedef struct {
    double acc[FL_NACC]; /* [0] loss sum, [1] the mean's denominator, [2..] per loss */
    fl_index bad_pos;    /* FL_E_INDEX: the first flat target position out of range */
    int64_t bad_value;   /* and the index read there */
} fl_result;

/* The kernel ids, FL_ID_<name>, in losses.def order, and FL_N_LOSSES. */
#include "losses.def"
#define FL_ENUM_ID(arg, name) FL_ID_##name,
enum { FL_LOSSES(FL_ENUM_ID, ~) FL_N_LOSSES };
#undef FL_ENUM_ID

#define FL_DECLARE_ENTRY(S, name) int fl_##name##_##S(const fl_args *args, fl_result *result);
FL_LOSSES(FL_DECLARE_ENTRY, f32)
FL_LOSSES(FL_DECLARE_ENTRY, f64)

/* Runs kernel `id` in float32 (f32 != 0) or float64. */
int fl_run(int id, int f32, const fl_args *args, fl_result *result);
/* The kernel's name ("bce"), or NULL for an id out of range. */
const char *fl_loss_name(int id);

/* Class-index kernels (fl_ce_index).  Unless flags has FL_NO_CHECK, a check
 * pass first reads every index: one out of [0, n_classes) that is not
 * ignore_index stops the call with FL_E_INDEX before anything is written, and
 * the pass gives the denominator (the summed weights, or the count, of the rows
 * that are not ignored).  The compute pass then reads each index once more and
 * bounds-checks it where it is used: an index that went out of range meanwhile
 * (another thread wrote it) gives its row a NaN loss and gradient and the call
 * returns FL_E_INDEX with the first such row, after writing everything. */

/* Runtime SIMD dispatch.  Every kernel is compiled once per SIMD target
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
 * a non-zero answer stops the call early: it returns FL_E_INTERRUPTED, and
 * what it already wrote to loss_out / grad stays written (the rest is
 * unspecified).  NULL (the default) never stops.  Set it once, before kernels
 * run. */
typedef int (*fl_interrupt_fn)(void);
void fl_set_interrupt_hook(fl_interrupt_fn hook);

/* Build information. */
const char *fl_compiler(void);

#ifdef __cplusplus
}
#endif

#endif /* FUSEDLOSS_H */
