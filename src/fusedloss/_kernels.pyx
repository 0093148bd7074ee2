# cython: freethreading_compatible = True
"""Thin bridge from validated NumPy arrays to the C kernels.

Every argument arriving here has already been checked by the Python layer
(fusedloss.losses): arrays are C-contiguous, of the compute dtype, of the right
shapes, and class indices are int64.  This module only takes raw pointers and
calls the C core with the GIL released.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t

cnp.import_array()

cdef extern from "fusedloss.h" nogil:
    ctypedef Py_ssize_t fl_index
    ctypedef struct fl_bcast:
        const void *ptr
        fl_index cols
        fl_index rs
        fl_index cs

    fl_index fl_ce_check_targets_f32(const int64_t *t, fl_index n, fl_index C, int64_t ign,
                                     const float *w, double *denom)
    fl_index fl_ce_check_targets_f64(const int64_t *t, fl_index n, fl_index C, int64_t ign,
                                     const double *w, double *denom)
    double fl_ce_index_f32(const float *z, const int64_t *t, fl_index n, fl_index C,
                           const float *w, int64_t ign, double eps, double scale,
                           float *loss, float *grad, int n_threads)
    double fl_ce_index_f64(const double *z, const int64_t *t, fl_index n, fl_index C,
                           const double *w, int64_t ign, double eps, double scale,
                           double *loss, double *grad, int n_threads)
    double fl_ce_prob_f32(const float *z, const float *y, fl_index n, fl_index C,
                          const float *w, double eps, double scale, float *loss, float *grad,
                          int n_threads)
    double fl_ce_prob_f64(const double *z, const double *y, fl_index n, fl_index C,
                          const double *w, double eps, double scale, double *loss,
                          double *grad, int n_threads)
    double fl_bce_f32(const float *x, const float *t, fl_index n, fl_bcast w, fl_bcast pw,
                      double scale, float *loss, float *grad, int n_threads)
    double fl_bce_f64(const double *x, const double *t, fl_index n, fl_bcast w, fl_bcast pw,
                      double scale, double *loss, double *grad, int n_threads)
    double fl_focal_f32(const float *x, const float *t, fl_index n, double alpha, double gamma,
                        double scale, float *loss, float *grad, int n_threads)
    double fl_focal_f64(const double *x, const double *t, fl_index n, double alpha,
                        double gamma, double scale, double *loss, double *grad, int n_threads)
    double fl_huber_f32(const float *x, const float *t, fl_index n, double delta, double scale,
                        float *loss, float *grad, int n_threads)
    double fl_huber_f64(const double *x, const double *t, fl_index n, double delta,
                        double scale, double *loss, double *grad, int n_threads)
    double fl_smooth_l1_f32(const float *x, const float *t, fl_index n, double beta,
                            double scale, float *loss, float *grad, int n_threads)
    double fl_smooth_l1_f64(const double *x, const double *t, fl_index n, double beta,
                            double scale, double *loss, double *grad, int n_threads)
    const char *fl_compiler()
    int fl_target_set(const char *name)
    const char *fl_target_selected()
    const char *fl_target_compiled()
    const char *fl_target_supported()


cdef inline void *_ptr(object a):
    """Data pointer of an ndarray, NULL for None."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline bint _is_f32(object a) except -1:
    cdef int tn = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if tn == cnp.NPY_FLOAT32:
        return True
    if tn == cnp.NPY_FLOAT64:
        return False
    raise TypeError("internal error: kernel arrays must be float32 or float64")


cdef inline fl_bcast _bcast(object desc):
    """(array, cols, rs, cs) or None -> fl_bcast."""
    cdef fl_bcast b
    if desc is None:
        b.ptr = NULL
        b.cols = 1
        b.rs = 0
        b.cs = 0
    else:
        b.ptr = _ptr(desc[0])
        b.cols = desc[1]
        b.rs = desc[2]
        b.cs = desc[3]
    return b


def ce_check_targets(target, Py_ssize_t n_classes, int64_t ignore_index, weight, bint f32):
    """Returns (position of the first bad index or -1, summed weight of counted targets)."""
    cdef const int64_t *t = <const int64_t *>_ptr(target)
    cdef fl_index n = cnp.PyArray_SIZE(<cnp.ndarray>target)
    cdef void *w = _ptr(weight)
    cdef double denom = 0.0
    cdef fl_index bad
    with nogil:
        if f32:
            bad = fl_ce_check_targets_f32(t, n, n_classes, ignore_index, <const float *>w, &denom)
        else:
            bad = fl_ce_check_targets_f64(t, n, n_classes, ignore_index, <const double *>w, &denom)
    return bad, denom


def ce_index(logits, target, Py_ssize_t n_rows, Py_ssize_t n_classes, weight,
             int64_t ignore_index, double eps, double scale, loss_out, grad, int n_threads):
    cdef void *z = _ptr(logits)
    cdef const int64_t *t = <const int64_t *>_ptr(target)
    cdef void *w = _ptr(weight)
    cdef void *lo = _ptr(loss_out)
    cdef void *g = _ptr(grad)
    cdef double r
    cdef bint f32 = _is_f32(logits)
    with nogil:
        if f32:
            r = fl_ce_index_f32(<const float *>z, t, n_rows, n_classes, <const float *>w,
                                ignore_index, eps, scale, <float *>lo, <float *>g, n_threads)
        else:
            r = fl_ce_index_f64(<const double *>z, t, n_rows, n_classes, <const double *>w,
                                ignore_index, eps, scale, <double *>lo, <double *>g, n_threads)
    return r


def ce_index_checked(logits, target, Py_ssize_t n_rows, Py_ssize_t n_classes, weight,
                     int64_t ignore_index, double eps, bint mean, loss_out, grad,
                     int n_threads):
    """Checks the class indices, then (only if all are valid) runs the kernel.

    Returns (position of the first bad index or -1, denominator, loss sum); the
    gradient scale is 1/denominator for a mean (0 for a mean over nothing)."""
    cdef void *z = _ptr(logits)
    cdef const int64_t *t = <const int64_t *>_ptr(target)
    cdef void *w = _ptr(weight)
    cdef void *lo = _ptr(loss_out)
    cdef void *g = _ptr(grad)
    cdef double r = 0.0, denom = 0.0, scale = 1.0
    cdef fl_index bad
    cdef bint f32 = _is_f32(logits)
    with nogil:
        if f32:
            bad = fl_ce_check_targets_f32(t, n_rows, n_classes, ignore_index, <const float *>w,
                                          &denom)
        else:
            bad = fl_ce_check_targets_f64(t, n_rows, n_classes, ignore_index,
                                          <const double *>w, &denom)
        if bad < 0:
            if mean:
                scale = 1.0 / denom if denom != 0 else 0.0
            if f32:
                r = fl_ce_index_f32(<const float *>z, t, n_rows, n_classes, <const float *>w,
                                    ignore_index, eps, scale, <float *>lo, <float *>g,
                                    n_threads)
            else:
                r = fl_ce_index_f64(<const double *>z, t, n_rows, n_classes,
                                    <const double *>w, ignore_index, eps, scale, <double *>lo,
                                    <double *>g, n_threads)
    return bad, denom, r


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether the byte ranges of two C-contiguous arrays intersect."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    if na == 0 or nb == 0:
        return False
    return pa < pb + nb and pb < pa + na


cdef object _np_f32 = None
cdef object _np_f64 = None
cdef dict _REDUCE = {"mean": 0, "sum": 1, "none": 2}


cdef object _fast_grad(object grad_out, object logits, cnp.ndarray x, cnp.ndarray t,
                       int tn, bint return_grad):
    """The gradient buffer for a fast path: a new array, the logits themselves
    (in place), a canonical disjoint grad_out, None (loss only), or
    NotImplemented when grad_out is anything else."""
    cdef cnp.ndarray grad
    cdef int i, nd = cnp.PyArray_NDIM(x)
    if grad_out is None:
        return cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(x), tn, 0) if return_grad else None
    if not return_grad:
        return NotImplemented
    if grad_out is logits:
        # in place: the targets must not share the logits' memory
        if not cnp.PyArray_ISWRITEABLE(x) or _overlap(x, t):
            return NotImplemented
        return x
    # a separate buffer: canonical, same shape, bytes disjoint from the inputs'
    if type(grad_out) is not cnp.ndarray:
        return NotImplemented
    grad = <cnp.ndarray>grad_out
    if cnp.PyArray_TYPE(grad) != tn or not cnp.PyArray_ISCARRAY(grad) \
            or not cnp.PyArray_ISNOTSWAPPED(grad) or cnp.PyArray_NDIM(grad) != nd:
        return NotImplemented
    for i in range(nd):
        if cnp.PyArray_DIM(grad, i) != cnp.PyArray_DIM(x, i):
            return NotImplemented
    if _overlap(grad, x) or _overlap(grad, t):
        return NotImplemented
    return grad


cdef object _fast_result(int red, double total, double denom, int tn, object loss_out,
                         object grad, bint return_grad):
    """The value a loss returns: the per-element/row array for "none", else the
    sum (red 1) or mean (red 0; NaN over nothing) as a NumPy scalar."""
    global _np_f32, _np_f64
    if _np_f32 is None:
        import numpy
        _np_f32, _np_f64 = numpy.float32, numpy.float64
    if red == 0 and denom == 0 and grad is not None:
        (<cnp.ndarray>grad).fill(0)  # a mean over nothing: zero gradient, whatever the logits
    if red == 2:
        loss = loss_out
    else:
        if red == 0:
            total = total / denom if denom != 0 else float("nan")
        loss = _np_f32(total) if tn == cnp.NPY_FLOAT32 else _np_f64(total)
    return (loss, grad) if return_grad else loss


def ce_index_fast(logits, target, ignore_index, label_smoothing, reduction, bint return_grad,
                  grad_out, n_threads):
    """softmax_cross_entropy for inputs that need no conversion, or NotImplemented.

    Accepts only what is already canonical: exact ndarrays, logits C-contiguous
    native float32/float64 with at least one class, int64 C-contiguous
    index targets of shape logits.shape[:-1], no weight, no out, grad_out None
    or the logits themselves, plain float/int/str options in range.  Anything
    else, including any class index out of range (checked before any write),
    returns NotImplemented and the caller takes the validating path, which owns
    every error message.  Results are those of the validating path: the same
    kernel with the same arguments."""
    cdef cnp.ndarray x, t, loss_out = None
    cdef object grad
    cdef int nd, i, red, tn
    cdef double eps, denom = 0.0, total = 0.0, scale = 1.0
    cdef int64_t ign
    cdef fl_index n_rows = 1, C, bad
    cdef int nthr
    if type(logits) is not cnp.ndarray or type(target) is not cnp.ndarray:
        return NotImplemented
    if type(label_smoothing) is not float or type(ignore_index) is not int:
        return NotImplemented
    if type(reduction) is not str or reduction not in _REDUCE:
        return NotImplemented
    if type(n_threads) is not int:
        return NotImplemented
    x = <cnp.ndarray>logits
    t = <cnp.ndarray>target
    tn = cnp.PyArray_TYPE(x)
    if tn != cnp.NPY_FLOAT32 and tn != cnp.NPY_FLOAT64:
        return NotImplemented
    if not cnp.PyArray_ISCARRAY_RO(x) or not cnp.PyArray_ISNOTSWAPPED(x):
        return NotImplemented
    if cnp.PyArray_TYPE(t) != cnp.NPY_INT64 or not cnp.PyArray_ISCARRAY_RO(t) \
            or not cnp.PyArray_ISNOTSWAPPED(t):
        return NotImplemented
    nd = cnp.PyArray_NDIM(x)
    if nd < 1 or cnp.PyArray_NDIM(t) != nd - 1:
        return NotImplemented
    C = cnp.PyArray_DIM(x, nd - 1)
    if C <= 0:
        return NotImplemented
    for i in range(nd - 1):
        if cnp.PyArray_DIM(t, i) != cnp.PyArray_DIM(x, i):
            return NotImplemented
        n_rows *= cnp.PyArray_DIM(x, i)
    eps = label_smoothing
    if not (0.0 <= eps <= 1.0):
        return NotImplemented
    if not (-(2**63) <= ignore_index < 2**63) or not (1 <= n_threads <= 1024):
        return NotImplemented
    ign = ignore_index
    nthr = n_threads
    red = _REDUCE[reduction]
    grad = _fast_grad(grad_out, logits, x, t, tn, return_grad)
    if grad is NotImplemented:
        return NotImplemented
    if red == 2:
        loss_out = cnp.PyArray_EMPTY(nd - 1, cnp.PyArray_DIMS(x), tn, 0)
    cdef void *z = cnp.PyArray_DATA(x)
    cdef const int64_t *tp = <const int64_t *>cnp.PyArray_DATA(t)
    cdef void *lo = NULL if loss_out is None else cnp.PyArray_DATA(loss_out)
    cdef void *g = NULL if grad is None else cnp.PyArray_DATA(<cnp.ndarray>grad)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            bad = fl_ce_check_targets_f32(tp, n_rows, C, ign, NULL, &denom)
        else:
            bad = fl_ce_check_targets_f64(tp, n_rows, C, ign, NULL, &denom)
        if bad < 0:
            if red == 0:
                scale = 1.0 / denom if denom != 0 else 0.0
            if tn == cnp.NPY_FLOAT32:
                total = fl_ce_index_f32(<const float *>z, tp, n_rows, C, NULL, ign, eps, scale,
                                        <float *>lo, <float *>g, nthr)
            else:
                total = fl_ce_index_f64(<const double *>z, tp, n_rows, C, NULL, ign, eps,
                                        scale, <double *>lo, <double *>g, nthr)
    if bad >= 0:
        return NotImplemented
    return _fast_result(red, total, denom, tn, loss_out, grad, return_grad)


def elementwise_fast(int kind, logits, target, double p1, double p2, reduction,
                     bint return_grad, grad_out, n_threads):
    """The element-wise losses for inputs that need no conversion, or NotImplemented.

    kind: 0 BCE with logits (no weight / pos_weight), 1 sigmoid focal loss
    (p1 = alpha, p2 = gamma), 2 Huber (p1 = delta), 3 smooth-L1 (p1 = beta).
    The parameters must already be validated by the caller.  Accepts only
    exact ndarrays: input and target C-contiguous, native, of one float dtype
    and one shape; grad_out None, the input itself, or a canonical disjoint
    buffer.  Anything else returns NotImplemented (the validating path owns
    every error message).  Same kernels, same arguments as the validating path.
    """
    cdef cnp.ndarray x, t, loss_out = None
    cdef object grad
    cdef int nd, i, red, tn
    cdef double total = 0.0, scale = 1.0
    cdef fl_index n
    cdef int nthr
    cdef fl_bcast nob
    if type(logits) is not cnp.ndarray or type(target) is not cnp.ndarray:
        return NotImplemented
    if type(reduction) is not str or reduction not in _REDUCE or type(n_threads) is not int:
        return NotImplemented
    if not (1 <= n_threads <= 1024):
        return NotImplemented
    x = <cnp.ndarray>logits
    t = <cnp.ndarray>target
    tn = cnp.PyArray_TYPE(x)
    if tn != cnp.NPY_FLOAT32 and tn != cnp.NPY_FLOAT64:
        return NotImplemented
    if cnp.PyArray_TYPE(t) != tn:
        return NotImplemented
    if not cnp.PyArray_ISCARRAY_RO(x) or not cnp.PyArray_ISNOTSWAPPED(x) \
            or not cnp.PyArray_ISCARRAY_RO(t) or not cnp.PyArray_ISNOTSWAPPED(t):
        return NotImplemented
    nd = cnp.PyArray_NDIM(x)
    if cnp.PyArray_NDIM(t) != nd:
        return NotImplemented
    for i in range(nd):
        if cnp.PyArray_DIM(t, i) != cnp.PyArray_DIM(x, i):
            return NotImplemented
    n = cnp.PyArray_SIZE(x)
    nthr = n_threads
    red = _REDUCE[reduction]
    grad = _fast_grad(grad_out, logits, x, t, tn, return_grad)
    if grad is NotImplemented:
        return NotImplemented
    if red == 2:
        loss_out = cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(x), tn, 0)
    if red == 0:
        scale = 1.0 / <double>n if n > 0 else 0.0
    nob.ptr = NULL
    nob.cols = 1
    nob.rs = 0
    nob.cs = 0
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *tp = cnp.PyArray_DATA(t)
    cdef void *lo = NULL if loss_out is None else cnp.PyArray_DATA(loss_out)
    cdef void *g = NULL if grad is None else cnp.PyArray_DATA(<cnp.ndarray>grad)
    with nogil:
        if tn == cnp.NPY_FLOAT32:
            if kind == 0:
                total = fl_bce_f32(<const float *>xp, <const float *>tp, n, nob, nob, scale,
                                   <float *>lo, <float *>g, nthr)
            elif kind == 1:
                total = fl_focal_f32(<const float *>xp, <const float *>tp, n, p1, p2, scale,
                                     <float *>lo, <float *>g, nthr)
            elif kind == 2:
                total = fl_huber_f32(<const float *>xp, <const float *>tp, n, p1, scale,
                                     <float *>lo, <float *>g, nthr)
            else:
                total = fl_smooth_l1_f32(<const float *>xp, <const float *>tp, n, p1, scale,
                                         <float *>lo, <float *>g, nthr)
        else:
            if kind == 0:
                total = fl_bce_f64(<const double *>xp, <const double *>tp, n, nob, nob, scale,
                                   <double *>lo, <double *>g, nthr)
            elif kind == 1:
                total = fl_focal_f64(<const double *>xp, <const double *>tp, n, p1, p2, scale,
                                     <double *>lo, <double *>g, nthr)
            elif kind == 2:
                total = fl_huber_f64(<const double *>xp, <const double *>tp, n, p1, scale,
                                     <double *>lo, <double *>g, nthr)
            else:
                total = fl_smooth_l1_f64(<const double *>xp, <const double *>tp, n, p1, scale,
                                         <double *>lo, <double *>g, nthr)
    return _fast_result(red, total, <double>n, tn, loss_out, grad, return_grad)


def ce_prob(logits, target, Py_ssize_t n_rows, Py_ssize_t n_classes, weight, double eps,
            double scale, loss_out, grad, int n_threads):
    cdef void *z = _ptr(logits)
    cdef void *y = _ptr(target)
    cdef void *w = _ptr(weight)
    cdef void *lo = _ptr(loss_out)
    cdef void *g = _ptr(grad)
    cdef double r
    cdef bint f32 = _is_f32(logits)
    with nogil:
        if f32:
            r = fl_ce_prob_f32(<const float *>z, <const float *>y, n_rows, n_classes,
                               <const float *>w, eps, scale, <float *>lo, <float *>g, n_threads)
        else:
            r = fl_ce_prob_f64(<const double *>z, <const double *>y, n_rows, n_classes,
                               <const double *>w, eps, scale, <double *>lo, <double *>g,
                               n_threads)
    return r


def bce(logits, target, weight, pos_weight, double scale, loss_out, grad, int n_threads):
    """weight / pos_weight: None or (array, cols, rs, cs) broadcast descriptors."""
    cdef void *x = _ptr(logits)
    cdef void *t = _ptr(target)
    cdef fl_index n = cnp.PyArray_SIZE(<cnp.ndarray>logits)
    cdef fl_bcast w = _bcast(weight)
    cdef fl_bcast pw = _bcast(pos_weight)
    cdef void *lo = _ptr(loss_out)
    cdef void *g = _ptr(grad)
    cdef double r
    cdef bint f32 = _is_f32(logits)
    with nogil:
        if f32:
            r = fl_bce_f32(<const float *>x, <const float *>t, n, w, pw, scale, <float *>lo,
                           <float *>g, n_threads)
        else:
            r = fl_bce_f64(<const double *>x, <const double *>t, n, w, pw, scale,
                           <double *>lo, <double *>g, n_threads)
    return r


def focal(logits, target, double alpha, double gamma, double scale, loss_out, grad,
          int n_threads):
    cdef void *x = _ptr(logits)
    cdef void *t = _ptr(target)
    cdef fl_index n = cnp.PyArray_SIZE(<cnp.ndarray>logits)
    cdef void *lo = _ptr(loss_out)
    cdef void *g = _ptr(grad)
    cdef double r
    cdef bint f32 = _is_f32(logits)
    with nogil:
        if f32:
            r = fl_focal_f32(<const float *>x, <const float *>t, n, alpha, gamma, scale,
                             <float *>lo, <float *>g, n_threads)
        else:
            r = fl_focal_f64(<const double *>x, <const double *>t, n, alpha, gamma, scale,
                             <double *>lo, <double *>g, n_threads)
    return r


def regression(int kind, input, target, double param, double scale, loss_out, grad,
               int n_threads):
    """kind 0: Huber (param = delta); kind 1: smooth-L1 (param = beta)."""
    cdef void *x = _ptr(input)
    cdef void *t = _ptr(target)
    cdef fl_index n = cnp.PyArray_SIZE(<cnp.ndarray>input)
    cdef void *lo = _ptr(loss_out)
    cdef void *g = _ptr(grad)
    cdef double r
    cdef bint f32 = _is_f32(input)
    with nogil:
        if kind == 0 and f32:
            r = fl_huber_f32(<const float *>x, <const float *>t, n, param, scale, <float *>lo,
                             <float *>g, n_threads)
        elif kind == 0:
            r = fl_huber_f64(<const double *>x, <const double *>t, n, param, scale,
                             <double *>lo, <double *>g, n_threads)
        elif f32:
            r = fl_smooth_l1_f32(<const float *>x, <const float *>t, n, param, scale,
                                 <float *>lo, <float *>g, n_threads)
        else:
            r = fl_smooth_l1_f64(<const double *>x, <const double *>t, n, param, scale,
                                 <double *>lo, <double *>g, n_threads)
    return r


def build_info():
    """(compiler, SIMD targets compiled in, SIMD target selected on this CPU)."""
    return (fl_compiler().decode(), fl_target_compiled().decode(),
            fl_target_selected().decode())


def simd_targets():
    """(compiled targets, targets this CPU supports), each a list, best last."""
    return (fl_target_compiled().decode().split(), fl_target_supported().decode().split())


def set_simd(str name):
    """Selects the SIMD target by name ("best" for the best supported one).

    Not meant to be called while kernels run in other threads."""
    cdef bytes b = name.encode()
    cdef int r = fl_target_set(b)
    if r == -1:
        raise ValueError(f"unknown SIMD target {name!r}; compiled: {fl_target_compiled().decode()}")
    if r == -2:
        raise ValueError(f"SIMD target {name!r} is not supported by this CPU; supported: "
                         f"{fl_target_supported().decode()}")
    return fl_target_selected().decode()
