/* The per-loss signatures of the first C API, as thin wrappers over the one
 * calling convention (fl_args / fl_result).  The C drivers, the fuzzer and the
 * threads benchmark were written against them; each wrapper maps its
 * arguments onto fl_args and nothing else, so the drivers test the kernels
 * exactly as the library calls them.
 *
 * Differences kept from the first API: fl_ce_index here skips the check pass
 * (FL_NO_CHECK), so invalid indices reach the compute pass (NaN rows,
 * bad_pos); the sum reduction with an explicit grad_scale; NaN for a call
 * stopped by the interrupt hook.  Include after fusedloss.h. */
#ifndef FL_LEGACY_API_H
#define FL_LEGACY_API_H

#include "fusedloss.h"

#include <string.h>

static const fl_bcast FL_NO_BCAST = { NULL, 1, 0, 0, 0, NULL, NULL };

static fl_args fl_legacy_args(const void *x, const void *t, fl_index n, double scale,
                              void *loss_out, void *grad, int n_threads)
{
    fl_args a;
    memset(&a, 0, sizeof a);
    a.n = n;
    a.input[0] = x;
    a.target = t;
    a.weight = FL_NO_BCAST;
    a.weight2 = FL_NO_BCAST;
    a.grad_scale = scale;
    a.reduction = FL_REDUCE_SUM;
    a.loss_out = loss_out;
    a.grad[0] = grad;
    a.n_threads = n_threads;
    return a;
}

static double fl_legacy_run(int id, int f32, const fl_args *a)
{
    fl_result r;
    fl_run(id, f32, a, &r);
    return r.acc[0];
}

#define FL_LEGACY(T, S, F32)                                                                       \
    static inline fl_index fl_legacy_check_targets_##S(const int64_t *t, fl_index n, fl_index C,   \
                                                       int64_t ign, const T *w, double *denom)     \
    {                                                                                              \
        fl_args a = fl_legacy_args(NULL, t, n, 1.0, NULL, NULL, 1);                                \
        fl_result r;                                                                               \
        a.n_classes = C;                                                                           \
        a.weight.ptr = w;                                                                          \
        a.ignore_index = ign;                                                                      \
        a.flags = FL_CHECK_ONLY;                                                                   \
        fl_run(FL_ID_ce_index, F32, &a, &r);                                                       \
        if (r.bad_pos < 0)                                                                         \
            *denom = r.acc[1];                                                                     \
        return r.bad_pos;                                                                          \
    }                                                                                              \
    static inline double fl_legacy_ce_index_##S(                                                   \
        const T *z, const int64_t *t, fl_index n, fl_index C, const T *w, int64_t ign, double eps, \
        double scale, T *loss, T *grad, int nthr, fl_index *bad_pos, int64_t *bad_value)           \
    {                                                                                              \
        fl_args a = fl_legacy_args(z, t, n, scale, loss, grad, nthr);                              \
        fl_result r;                                                                               \
        a.n_classes = C;                                                                           \
        a.weight.ptr = w;                                                                          \
        a.ignore_index = ign;                                                                      \
        a.param[0] = eps;                                                                          \
        a.flags = FL_NO_CHECK;                                                                     \
        fl_run(FL_ID_ce_index, F32, &a, &r);                                                       \
        if (bad_pos)                                                                               \
            *bad_pos = r.bad_pos;                                                                  \
        if (bad_value && r.bad_pos >= 0)                                                           \
            *bad_value = r.bad_value;                                                              \
        return r.acc[0];                                                                           \
    }                                                                                              \
    static inline double fl_legacy_ce_prob_##S(const T *z, const T *y, fl_index n, fl_index C,     \
                                               const T *w, double eps, double scale, T *loss,      \
                                               T *grad, int nthr)                                  \
    {                                                                                              \
        fl_args a = fl_legacy_args(z, y, n, scale, loss, grad, nthr);                              \
        a.n_classes = C;                                                                           \
        a.weight.ptr = w;                                                                          \
        a.param[0] = eps;                                                                          \
        return fl_legacy_run(FL_ID_ce_prob, F32, &a);                                              \
    }                                                                                              \
    static inline double fl_legacy_bce_##S(const T *x, const T *t, fl_index n, fl_bcast w,         \
                                           fl_bcast pw, double scale, T *loss, T *grad, int nthr)  \
    {                                                                                              \
        fl_args a = fl_legacy_args(x, t, n, scale, loss, grad, nthr);                              \
        a.weight = w;                                                                              \
        a.weight2 = pw;                                                                            \
        return fl_legacy_run(FL_ID_bce, F32, &a);                                                  \
    }                                                                                              \
    static inline double fl_legacy_focal_##S(const T *x, const T *t, fl_index n, double alpha,     \
                                             double gamma, double scale, T *loss, T *grad,         \
                                             int nthr)                                             \
    {                                                                                              \
        fl_args a = fl_legacy_args(x, t, n, scale, loss, grad, nthr);                              \
        a.param[0] = alpha;                                                                        \
        a.param[1] = gamma;                                                                        \
        return fl_legacy_run(FL_ID_focal, F32, &a);                                                \
    }                                                                                              \
    static inline double fl_legacy_huber_##S(const T *x, const T *t, fl_index n, double delta,     \
                                             double scale, T *loss, T *grad, int nthr)             \
    {                                                                                              \
        fl_args a = fl_legacy_args(x, t, n, scale, loss, grad, nthr);                              \
        a.param[0] = delta;                                                                        \
        return fl_legacy_run(FL_ID_huber, F32, &a);                                                \
    }                                                                                              \
    static inline double fl_legacy_smooth_l1_##S(const T *x, const T *t, fl_index n, double beta,  \
                                                 double scale, T *loss, T *grad, int nthr)         \
    {                                                                                              \
        fl_args a = fl_legacy_args(x, t, n, scale, loss, grad, nthr);                              \
        a.param[0] = beta;                                                                         \
        return fl_legacy_run(FL_ID_smooth_l1, F32, &a);                                            \
    }

FL_LEGACY(float, f32, 1)
FL_LEGACY(double, f64, 0)

/* The drivers call the first API's names. */
#define fl_ce_check_targets_f32 fl_legacy_check_targets_f32
#define fl_ce_check_targets_f64 fl_legacy_check_targets_f64
#define fl_ce_index_f32 fl_legacy_ce_index_f32
#define fl_ce_index_f64 fl_legacy_ce_index_f64
#define fl_ce_prob_f32 fl_legacy_ce_prob_f32
#define fl_ce_prob_f64 fl_legacy_ce_prob_f64
#define fl_bce_f32 fl_legacy_bce_f32
#define fl_bce_f64 fl_legacy_bce_f64
#define fl_focal_f32 fl_legacy_focal_f32
#define fl_focal_f64 fl_legacy_focal_f64
#define fl_huber_f32 fl_legacy_huber_f32
#define fl_huber_f64 fl_legacy_huber_f64
#define fl_smooth_l1_f32 fl_legacy_smooth_l1_f32
#define fl_smooth_l1_f64 fl_legacy_smooth_l1_f64

#endif
