# cython: freethreading_compatible = True
"""Thin bridge from validated NumPy arrays to the C kernels.

Every argument arriving here has already been checked by the Python layer
(fusedloss.losses): arrays are C-contiguous, of the compute dtype, of the right
shapes, and class indices are int64.  This module only takes raw pointers and
calls the C core with the GIL released.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t

from cpython.exc cimport PyErr_Occurred

cnp.import_array()

cdef extern from "fusedloss.h" nogil:
    ctypedef Py_ssize_t fl_index
    ctypedef struct fl_bcast:
        const void *ptr
        fl_index cols
        fl_index rs
        fl_index cs
        int ndim
        const fl_index *shape
        const fl_index *stride
    enum: FL_BCAST_MAXDIM

    fl_index fl_ce_check_targets_f32(const int64_t *t, fl_index n, fl_index C, int64_t ign,
                                     const float *w, double *denom)
    fl_index fl_ce_check_targets_f64(const int64_t *t, fl_index n, fl_index C, int64_t ign,
                                     const double *w, double *denom)
    double fl_ce_index_f32(const float *z, const int64_t *t, fl_index n, fl_index C,
                           const float *w, int64_t ign, double eps, double scale,
                           float *loss, float *grad, int n_threads, fl_index *bad_pos,
                           int64_t *bad_value)
    double fl_ce_index_f64(const double *z, const int64_t *t, fl_index n, fl_index C,
                           const double *w, int64_t ign, double eps, double scale,
                           double *loss, double *grad, int n_threads, fl_index *bad_pos,
                           int64_t *bad_value)
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
    ctypedef int (*fl_interrupt_fn)() noexcept nogil
    void fl_set_interrupt_hook(fl_interrupt_fn hook)
    const char *fl_compiler()
    int fl_target_set(const char *name)
    const char *fl_target_selected()
    const char *fl_target_compiled()
    const char *fl_target_supported()


# ---------------------------------------------------------------------------
# Ctrl-C: the C runtime calls this hook from the thread that called a kernel,
# at most every ~50 ms of a long call.  On the main thread it runs Python's
# signal handlers; a KeyboardInterrupt (or any exception they raise) stops
# the kernel, and the wrapper re-raises it once the kernel has returned.

cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident() nogil

cdef extern from "Python.h":
    # declared without an exception clause: the exception it sets (KeyboardInterrupt)
    # must stay set for the wrapper to raise, not be reported as unraisable here
    int _check_signals "PyErr_CheckSignals" () noexcept

cdef unsigned long _main_ident = 0

cdef int _interrupt_hook() noexcept nogil:
    cdef int r
    if PyThread_get_thread_ident() != _main_ident:
        return 0  # signal handlers run on the main thread only
    with gil:
        r = _check_signals()
    return r != 0


def _install_interrupt_hook():
    global _main_ident
    import threading
    _main_ident = <unsigned long>threading.main_thread().ident
    fl_set_interrupt_hook(_interrupt_hook)


_install_interrupt_hook()


cdef inline int _raise_pending() except -1:
    """Propagates an exception set while the GIL was released (Ctrl-C)."""
    if PyErr_Occurred() != NULL:
        return -1
    return 0


# ---------------------------------------------------------------------------
# Buffers.  Every pointer handed to C comes from the ndarray's own C struct,
# checked here (type, dtype, layout, writability, size), never from Python
# attributes, which a subclass can override.

cdef void *_buf(object a, int tn, fl_index n, bint writable, str name) except? NULL:
    """The data pointer of `a`, checked: an ndarray (any subclass; its real
    buffer is used) of type number tn, C-contiguous, aligned, native byte
    order, exactly n elements, writable if asked.  None gives NULL."""
    cdef cnp.ndarray arr
    if a is None:
        return NULL
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != tn:
        raise ValueError(f"{name} has the wrong dtype for this kernel")
    if not cnp.PyArray_ISCARRAY_RO(arr) or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise ValueError(f"{name} must be C-contiguous, aligned and in native byte order")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writable")
    if cnp.PyArray_SIZE(arr) != n:
        raise ValueError(f"{name} has {cnp.PyArray_SIZE(arr)} elements, expected {n}")
    return cnp.PyArray_DATA(arr)


cdef inline int _ftype(object a, str name) except -1:
    """NPY_FLOAT32 or NPY_FLOAT64 for a kernel's main input."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef int tn = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if tn != cnp.NPY_FLOAT32 and tn != cnp.NPY_FLOAT64:
        raise TypeError(f"{name} must be float32 or float64")
    return tn


cdef inline fl_index _size(object a):
    return cnp.PyArray_SIZE(<cnp.ndarray>a)

cdef fl_bcast _bcast(object desc, int tn, fl_index n, str name, fl_index *shp,
                     fl_index *std) except *:
    """A broadcast descriptor -> fl_bcast, checked so that every index the kernel
    forms is inside the array.  desc is None, (array, cols, rs, cs) (simple form)
    or (array, shape, strides) (general form, strides in elements; shp and std,
    FL_BCAST_MAXDIM long, receive them)."""
    cdef fl_bcast b
    cdef fl_index size, cols, rs, cs, rows, total, top
    cdef int d, nd
    b.ptr = NULL
    b.cols = 1
    b.rs = 0
    b.cs = 0
    b.ndim = 0
    b.shape = NULL
    b.stride = NULL
    if desc is None:
        return b
    arr = desc[0]
    if not cnp.PyArray_Check(arr):
        raise TypeError(f"{name} must be a numpy.ndarray")
    size = cnp.PyArray_SIZE(<cnp.ndarray>arr)
    if size < 1:
        raise ValueError(f"{name}: empty broadcast array")
    if len(desc) == 3:
        shape, strides = desc[1], desc[2]
        nd = len(shape)
        if nd < 1 or nd > FL_BCAST_MAXDIM or len(strides) != nd:
            raise ValueError(f"{name}: invalid broadcast descriptor")
        total = 1
        top = 0
        for d in range(nd):
            shp[d] = shape[d]
            std[d] = strides[d]
            if shp[d] < 1 or std[d] < 0 or std[d] >= size:
                raise ValueError(f"{name}: invalid broadcast descriptor")
            total *= shp[d]
            top += (shp[d] - 1) * std[d]
            if total > n or top >= size:
                raise ValueError(f"{name}: broadcast descriptor out of bounds")
        if total != n:
            raise ValueError(f"{name}: broadcast descriptor does not cover the input")
        b.ptr = _buf(arr, tn, size, False, name)
        b.ndim = nd
        b.shape = shp
        b.stride = std
        return b
    _, cols, rs, cs = desc
    if cols < 1 or rs < 0 or cs < 0 or cs > 1:
        raise ValueError(f"{name}: invalid broadcast descriptor")
    rows = (n + cols - 1) // cols
    if n > 0 and (rows - 1) * rs + (min(cols, n) - 1) * cs >= size:
        raise ValueError(f"{name} is too small for the input")
    b.ptr = _buf(arr, tn, size, False, name)
    b.cols = cols
    b.rs = rs
    b.cs = cs
    return b


cdef int _check_outputs(object inputs, object loss_out, object grad, object inplace_of,
                       ) except -1:
    """The aliasing rules of the C API, checked on the real buffers: loss_out
    overlaps nothing; grad overlaps nothing, except that it may be exactly
    `inplace_of` (same start, same size)."""
    cdef object a
    if loss_out is not None:
        for a in inputs:
            if a is not None and _overlap(<cnp.ndarray>loss_out, <cnp.ndarray>a):
                raise ValueError("out overlaps an input array")
        if grad is not None and _overlap(<cnp.ndarray>loss_out, <cnp.ndarray>grad):
            raise ValueError("out and grad_out overlap")
    if grad is not None:
        for a in inputs:
            if a is None or not _overlap(<cnp.ndarray>grad, <cnp.ndarray>a):
                continue
            if a is inplace_of and cnp.PyArray_DATA(<cnp.ndarray>grad) == \
                    cnp.PyArray_DATA(<cnp.ndarray>a) and \
                    cnp.PyArray_NBYTES(<cnp.ndarray>grad) == cnp.PyArray_NBYTES(<cnp.ndarray>a):
                continue
            raise ValueError("grad_out overlaps an input array")
    return 0


def ce_index_checked(logits, target, Py_ssize_t n_rows, Py_ssize_t n_classes, weight,
                     int64_t ignore_index, double eps, bint mean, loss_out, grad,
                     int n_threads):
    """Checks the class indices, then (only if all are valid) runs the kernel.

    Returns (position of the first bad index or -1, the index found there,
    denominator, loss sum); the gradient scale is 1/denominator for a mean (0
    for a mean over nothing).  A position is also returned when an index
    turned invalid while the kernel ran (another thread wrote it): the
    kernel never used it, and its row is NaN."""
    cdef int tn = _ftype(logits, "logits")
    if n_rows < 0 or n_classes < 0:
        raise ValueError("negative size")
    if n_classes > 0 and n_rows > (<fl_index>1 << 62) // n_classes:
        raise ValueError("shape too large")
    cdef void *z = _buf(logits, tn, n_rows * n_classes, False, "logits")
    cdef const int64_t *t = <const int64_t *>_buf(target, cnp.NPY_INT64, n_rows, False,
                                                  "target")
    cdef void *w = _buf(weight, tn, n_classes, False, "weight")
    cdef void *lo = _buf(loss_out, tn, n_rows, True, "out")
    cdef void *g = _buf(grad, tn, n_rows * n_classes, True, "grad_out")
    _check_outputs((logits, target, weight), loss_out, grad, logits)
    cdef double r = 0.0, denom = 0.0, scale = 1.0
    cdef fl_index bad, late_bad = -1
    cdef int64_t value = 0
    cdef bint f32 = tn == cnp.NPY_FLOAT32
    with nogil:
        if f32:
            bad = fl_ce_check_targets_f32(t, n_rows, n_classes, ignore_index, <const float *>w,
                                          &denom)
        else:
            bad = fl_ce_check_targets_f64(t, n_rows, n_classes, ignore_index,
                                          <const double *>w, &denom)
        if bad >= 0:
            value = t[bad]
        else:
            if mean:
                scale = 1.0 / denom if denom != 0 else 0.0
            if f32:
                r = fl_ce_index_f32(<const float *>z, t, n_rows, n_classes, <const float *>w,
                                    ignore_index, eps, scale, <float *>lo, <float *>g,
                                    n_threads, &late_bad, &value)
            else:
                r = fl_ce_index_f64(<const double *>z, t, n_rows, n_classes,
                                    <const double *>w, ignore_index, eps, scale, <double *>lo,
                                    <double *>g, n_threads, &late_bad, &value)
            bad = late_bad
    _raise_pending()
    return bad, value, denom, r


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
        # a C cast: beyond float32's range it is inf without a NumPy warning
        loss = _np_f32(<float>total) if tn == cnp.NPY_FLOAT32 else _np_f64(total)
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
    cdef fl_index late_bad = -1
    cdef int64_t late_value = 0
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
                                        <float *>lo, <float *>g, nthr, &late_bad, &late_value)
            else:
                total = fl_ce_index_f64(<const double *>z, tp, n_rows, C, NULL, ign, eps,
                                        scale, <double *>lo, <double *>g, nthr, &late_bad,
                                        &late_value)
    if bad >= 0:
        return NotImplemented  # nothing written: the validating path raises
    _raise_pending()
    if late_bad >= 0:
        # An index changed by another thread while the kernel ran: it was
        # never used (its row is NaN), but the buffers are already written.
        raise IndexError(index_message(t, late_bad, late_value, C))
    return _fast_result(red, total, denom, tn, loss_out, grad, return_grad)


def index_message(target, Py_ssize_t pos, value, Py_ssize_t n_classes):
    """'target[i, j] = v is out of range for C classes', from the real shape."""
    if not cnp.PyArray_Check(target):
        raise TypeError("target must be a numpy.ndarray")
    cdef cnp.ndarray t = <cnp.ndarray>target
    cdef int nd = cnp.PyArray_NDIM(t), i
    cdef list where = []
    cdef Py_ssize_t d
    for i in range(nd - 1, -1, -1):
        d = cnp.PyArray_DIM(t, i)
        where.append(pos % d if d else 0)
        pos = pos // d if d else 0
    where.reverse()
    label = "target" if nd == 0 else "target[" + ", ".join(str(i) for i in where) + "]"
    return f"{label} = {value} is out of range for {n_classes} classes"


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
    if tn == cnp.NPY_FLOAT32 and not (_f32_ok(p1, kind >= 2) and _f32_ok(p2, False)):
        return NotImplemented  # a parameter float32 cannot hold: the validating path says so
    grad = _fast_grad(grad_out, logits, x, t, tn, return_grad)
    if grad is NotImplemented:
        return NotImplemented
    if red == 2:
        loss_out = cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(x), tn, 0)
    if red == 0:
        scale = 1.0 / <double>n if n > 0 else 0.0
    nob = _bcast(None, tn, n, "weight", NULL, NULL)  # no weights
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
    _raise_pending()
    return _fast_result(red, total, <double>n, tn, loss_out, grad, return_grad)


cdef inline bint _f32_ok(double v, bint scale_like) noexcept:
    """Whether float32 can hold parameter v (as _validate.param_in_dtype): finite
    there, and for a scale-like one 0 or in float32's normal range."""
    cdef double a = v if v >= 0 else -v
    if a > 3.4028234663852886e38:
        return False
    return not scale_like or v == 0 or a >= 1.1754943508222875e-38


def ce_prob(logits, target, Py_ssize_t n_rows, Py_ssize_t n_classes, weight, double eps,
            double scale, loss_out, grad, int n_threads):
    cdef int tn = _ftype(logits, "logits")
    if n_rows < 0 or n_classes < 0:
        raise ValueError("negative size")
    if n_classes > 0 and n_rows > (<fl_index>1 << 62) // n_classes:
        raise ValueError("shape too large")
    cdef fl_index n = n_rows * n_classes
    cdef void *z = _buf(logits, tn, n, False, "logits")
    cdef void *y = _buf(target, tn, n, False, "target")
    cdef void *w = _buf(weight, tn, n_classes, False, "weight")
    cdef void *lo = _buf(loss_out, tn, n_rows, True, "out")
    cdef void *g = _buf(grad, tn, n, True, "grad_out")
    _check_outputs((logits, target, weight), loss_out, grad, logits)
    cdef double r
    cdef bint f32 = tn == cnp.NPY_FLOAT32
    with nogil:
        if f32:
            r = fl_ce_prob_f32(<const float *>z, <const float *>y, n_rows, n_classes,
                               <const float *>w, eps, scale, <float *>lo, <float *>g, n_threads)
        else:
            r = fl_ce_prob_f64(<const double *>z, <const double *>y, n_rows, n_classes,
                               <const double *>w, eps, scale, <double *>lo, <double *>g,
                               n_threads)
    _raise_pending()
    return r


def bce(logits, target, weight, pos_weight, double scale, loss_out, grad, int n_threads):
    """weight / pos_weight: None or (array, cols, rs, cs) broadcast descriptors."""
    cdef int tn = _ftype(logits, "logits")
    cdef fl_index n = _size(logits)
    cdef void *x = _buf(logits, tn, n, False, "logits")
    cdef void *t = _buf(target, tn, n, False, "target")
    cdef fl_index wshape[FL_BCAST_MAXDIM]
    cdef fl_index wstride[FL_BCAST_MAXDIM]
    cdef fl_index pshape[FL_BCAST_MAXDIM]
    cdef fl_index pstride[FL_BCAST_MAXDIM]
    cdef fl_bcast w = _bcast(weight, tn, n, "weight", wshape, wstride)
    cdef fl_bcast pw = _bcast(pos_weight, tn, n, "pos_weight", pshape, pstride)
    cdef void *lo = _buf(loss_out, tn, n, True, "out")
    cdef void *g = _buf(grad, tn, n, True, "grad_out")
    _check_outputs((logits, target, None if weight is None else weight[0],
                    None if pos_weight is None else pos_weight[0]), loss_out, grad, logits)
    cdef double r
    cdef bint f32 = tn == cnp.NPY_FLOAT32
    with nogil:
        if f32:
            r = fl_bce_f32(<const float *>x, <const float *>t, n, w, pw, scale, <float *>lo,
                           <float *>g, n_threads)
        else:
            r = fl_bce_f64(<const double *>x, <const double *>t, n, w, pw, scale,
                           <double *>lo, <double *>g, n_threads)
    _raise_pending()
    return r


def focal(logits, target, double alpha, double gamma, double scale, loss_out, grad,
          int n_threads):
    cdef int tn = _ftype(logits, "logits")
    cdef fl_index n = _size(logits)
    cdef void *x = _buf(logits, tn, n, False, "logits")
    cdef void *t = _buf(target, tn, n, False, "target")
    cdef void *lo = _buf(loss_out, tn, n, True, "out")
    cdef void *g = _buf(grad, tn, n, True, "grad_out")
    _check_outputs((logits, target), loss_out, grad, logits)
    cdef double r
    cdef bint f32 = tn == cnp.NPY_FLOAT32
    with nogil:
        if f32:
            r = fl_focal_f32(<const float *>x, <const float *>t, n, alpha, gamma, scale,
                             <float *>lo, <float *>g, n_threads)
        else:
            r = fl_focal_f64(<const double *>x, <const double *>t, n, alpha, gamma, scale,
                             <double *>lo, <double *>g, n_threads)
    _raise_pending()
    return r


def regression(int kind, input, target, double param, double scale, loss_out, grad,
               int n_threads):
    """kind 0: Huber (param = delta); kind 1: smooth-L1 (param = beta)."""
    cdef int tn = _ftype(input, "input")
    cdef fl_index n = _size(input)
    cdef void *x = _buf(input, tn, n, False, "input")
    cdef void *t = _buf(target, tn, n, False, "target")
    cdef void *lo = _buf(loss_out, tn, n, True, "out")
    cdef void *g = _buf(grad, tn, n, True, "grad_out")
    _check_outputs((input, target), loss_out, grad, input)
    cdef double r
    cdef bint f32 = tn == cnp.NPY_FLOAT32
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
    _raise_pending()
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
