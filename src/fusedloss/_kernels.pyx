# cython: freethreading_compatible = True
"""The one path from Python to the C kernels.

Every public loss (made from the registry, fusedloss._registry) calls
`elementwise`, `class_axis` or `multi` here with its arguments as the user gave them.
Each argument is checked once: what is already canonical (an exact ndarray of
the compute dtype, C-contiguous, native, of the right shape; a plain float in
range) is taken as it is, checked on the array's own C struct; anything else
goes through fusedloss._validate, which converts it or raises the error
message.  Then every buffer the kernel will touch is checked again on its C
struct (type, dtype, layout, size, writability, aliasing), the call runs with
the GIL released, and `_finish` makes the returned value.
"""
cimport numpy as cnp
from libc.math cimport isfinite
from libc.stdint cimport int64_t
from libc.string cimport memset

from cpython.exc cimport PyErr_Occurred
from cpython.long cimport PyLong_AsLongLongAndOverflow

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    # a NumPy scalar of descr's type from the bytes at data (no Python-level call)
    object PyArray_Scalar(void *data, cnp.dtype descr, object base)

cdef cnp.dtype _DESCR_F32 = cnp.PyArray_DescrFromType(cnp.NPY_FLOAT32)
cdef cnp.dtype _DESCR_F64 = cnp.PyArray_DescrFromType(cnp.NPY_FLOAT64)

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
    enum: FL_MAX_THREADS
    enum: FL_MAX_INPUTS
    enum: FL_MAX_PARAMS
    enum: FL_NACC
    enum: FL_N_LOSSES
    enum: FL_REDUCE_MEAN
    enum: FL_REDUCE_SUM
    enum: FL_REDUCE_NONE
    enum: FL_OK
    enum: FL_E_INDEX
    enum: FL_E_INTERRUPTED
    enum: FL_E_UNSUPPORTED
    enum: FL_E_UNKNOWN
    enum: FL_E_DOMAIN
    enum: FL_E_NOMEM
    enum: FL_NO_CHECK
    # array sizes as in fusedloss.h (FL_MAX_INPUTS, FL_MAX_PARAMS, FL_NACC):
    # checked against the header at import
    ctypedef struct fl_args:
        fl_index n
        fl_index n_classes
        fl_index class_stride
        const void *input[3]
        const void *target
        fl_bcast weight
        fl_bcast weight2
        int64_t ignore_index
        double param[4]
        double grad_scale
        int reduction
        int flags
        int n_threads
        void *loss_out
        void *grad[3]
        void *hess
    ctypedef struct fl_result:
        double acc[4]
        fl_index bad_pos
        int64_t bad_value
    int fl_run(int id, int f32, const fl_args *args, fl_result *result)
    const char *fl_loss_name(int id)
    ctypedef int (*fl_interrupt_fn)() noexcept nogil
    void fl_set_interrupt_hook(fl_interrupt_fn hook)
    const char *fl_compiler()
    int fl_target_set(const char *name)
    const char *fl_target_selected()
    const char *fl_target_compiled()
    const char *fl_target_supported()

if FL_MAX_INPUTS != 3 or FL_MAX_PARAMS != 4 or FL_NACC != 4:
    raise ImportError("fusedloss._kernels was built against another fusedloss.h")

#: The most threads a call uses (fusedloss.h's FL_MAX_THREADS).
MAX_THREADS = FL_MAX_THREADS


def kernel_names():
    """The C kernels in losses.def order (a kernel's id is its position)."""
    return [fl_loss_name(i).decode() for i in range(FL_N_LOSSES)]


def kernel_id(str name):
    """The id of the C kernel `name`; KeyError when losses.def has none."""
    names = kernel_names()
    if name not in names:
        raise KeyError(f"no C kernel {name!r} in losses.def (have {', '.join(names)})")
    return names.index(name)


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
        b.ndim, b.shape, b.stride = nd, shp, std
    else:
        _, cols, rs, cs = desc
        if cols < 1 or rs < 0 or cs < 0 or cs > 1:
            raise ValueError(f"{name}: invalid broadcast descriptor")
        rows = (n + cols - 1) // cols
        if n > 0 and (rows - 1) * rs + (min(cols, n) - 1) * cs >= size:
            raise ValueError(f"{name} is too small for the input")
        b.cols, b.rs, b.cs = cols, rs, cs
    b.ptr = _buf(arr, tn, size, False, name)
    return b


cdef int _check_outputs(tuple inputs, object loss_out, object grad) except -1:
    """The aliasing rules of the C API, checked on the real buffers: loss_out
    overlaps nothing; grad overlaps nothing, except that it may be exactly
    inputs[0] (same start, same size: the gradient in place), provided no other
    input shares that memory."""
    cdef object a
    cdef Py_ssize_t i
    if loss_out is not None:
        for a in inputs:
            if a is not None and _overlap(<cnp.ndarray>loss_out, <cnp.ndarray>a):
                raise ValueError("out overlaps an input array")
        if grad is not None and _overlap(<cnp.ndarray>loss_out, <cnp.ndarray>grad):
            raise ValueError("out and grad_out overlap")
    if grad is not None:
        for i in range(len(inputs)):
            a = inputs[i]
            if a is None or not _overlap(<cnp.ndarray>grad, <cnp.ndarray>a):
                continue
            if i == 0 and cnp.PyArray_DATA(<cnp.ndarray>grad) == \
                    cnp.PyArray_DATA(<cnp.ndarray>a) and \
                    cnp.PyArray_NBYTES(<cnp.ndarray>grad) == cnp.PyArray_NBYTES(<cnp.ndarray>a):
                continue
            raise ValueError("grad_out overlaps an input array")
    return 0


cdef tuple _with_user(x, xu, t, tu, w, wu, p, pu):
    """Every array a call reads, converted and as the user gave it (the converted
    input first: the only one the gradient may overwrite, exactly).  A buffer
    over the user's own input is refused even when the kernel reads a copy."""
    if xu is x and tu is t and wu is w and pu is p:
        return (x, t, w, p)
    cdef list extra = []
    if xu is not x:
        extra.append(xu)
    if tu is not t:
        extra.append(tu)
    if wu is not w:
        extra.append(wu)
    if pu is not p:
        extra.append(pu)
    return (x, t, w, p, *[a for a in extra if cnp.PyArray_Check(a)])


cdef inline void _extent(cnp.ndarray a, char **lo, char **hi):
    """The byte range [lo, hi) an array's elements lie in, for any strides."""
    cdef char *p = <char *>cnp.PyArray_DATA(a)
    cdef Py_ssize_t low = 0, high = cnp.PyArray_ITEMSIZE(a), step
    cdef int i
    for i in range(cnp.PyArray_NDIM(a)):
        step = (cnp.PyArray_DIM(a, i) - 1) * cnp.PyArray_STRIDE(a, i)
        if step < 0:
            low += step
        else:
            high += step
    lo[0] = p + low
    hi[0] = p + high


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether the byte ranges of two arrays intersect (a bound: may_share_memory)."""
    cdef char *alo
    cdef char *ahi
    cdef char *blo
    cdef char *bhi
    if cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_SIZE(b) == 0:
        return False
    _extent(a, &alo, &ahi)
    _extent(b, &blo, &bhi)
    return alo < bhi and blo < ahi


# ---------------------------------------------------------------------------
# The registry's specs, compiled for the call path.

cdef class Kernel:
    """One LossSpec made ready for the call path: its C kernel ids and the
    ranges of its float parameters as C values."""
    cdef readonly object spec
    cdef readonly int kid
    cdef readonly int kid2
    cdef int n_float
    cdef double lo[4]
    cdef double hi[4]
    cdef bint lo_open[4]
    cdef bint hi_open[4]
    cdef bint scale_like[4]
    cdef bint slow[4]
    cdef bint is_bool[4]
    cdef list choices
    cdef readonly bint batchmean
    cdef readonly bint index_only
    cdef readonly tuple names
    cdef readonly tuple weight_names

    def __init__(self, spec):
        cdef int i
        self.spec = spec
        self.kid = kernel_id(spec.kernel)
        self.kid2 = kernel_id(spec.extra_kernels[0]) if spec.extra_kernels else -1
        floats = spec.floats
        if len(floats) > FL_MAX_PARAMS:
            raise ValueError(f"{spec.name}: more than {FL_MAX_PARAMS} float parameters")
        self.n_float = len(floats)
        self.choices = []
        for i, p in enumerate(floats):
            self.lo[i] = p.lo
            self.hi[i] = p.hi
            self.lo_open[i] = p.lo_open
            self.hi_open[i] = p.hi_open
            self.scale_like[i] = p.scale_like
            self.slow[i] = p.kind != "float" or bool(p.choices)
            self.is_bool[i] = p.kind == "bool"
            self.choices.append(tuple(p.choices))
        self.batchmean = "batchmean" in spec.reductions
        self.index_only = spec.target_domain == "class"
        self.names = tuple(spec.inputs)
        self.weight_names = tuple(p.name for p in spec.weights) + ("weight", "weight")


cdef object _V = None  # fusedloss._validate, imported on first use
cdef object _threads_default = None  # fusedloss._config.get_num_threads


cdef object _validate():
    global _V, _threads_default
    if _V is None:
        from . import _config, _validate
        _threads_default = _config.get_num_threads
        _V = _validate
    return _V


# "batchmean" (kl_div): the sum over the first axis's length, run as a sum
cdef enum:
    RED_BATCHMEAN = 3
cdef dict _REDUCE = {"mean": FL_REDUCE_MEAN, "sum": FL_REDUCE_SUM, "none": FL_REDUCE_NONE,
                     "batchmean": RED_BATCHMEAN}
cdef tuple _RED_NAMES = ("mean", "sum", "none", "batchmean")
cdef tuple _RED_PLUS = ("mean", "sum", "none", "batchmean")


cdef int _reduction(object reduction, bint batchmean=False) except -1:
    if type(reduction) is str:
        r = _REDUCE.get(reduction)
        if r is not None and (r != RED_BATCHMEAN or batchmean):
            return r
    if batchmean:
        return _REDUCE[_validate().check_reduction(reduction, _RED_PLUS)]
    return _REDUCE[_validate().check_reduction(reduction)]


cdef int _threads(object n_threads) except -1:
    cdef long long v
    cdef int overflow = 0
    if type(n_threads) is int:
        v = PyLong_AsLongLongAndOverflow(n_threads, &overflow)
        if not overflow and 1 <= v <= FL_MAX_THREADS:
            return <int>v
    _validate()
    if n_threads is None:
        return _threads_default()
    from ._config import resolve_threads
    return resolve_threads(n_threads)


cdef int _params(Kernel k, tuple values, double *out) except -1:
    """The float parameters, finite and in range (else _validate raises)."""
    cdef int i
    cdef double v
    if len(values) != k.n_float:
        raise TypeError(f"{k.spec.name}: expected {k.n_float} parameters")
    for i in range(k.n_float):
        x = values[i]
        if k.slow[i]:
            # bools as themselves; a choice (multi_margin's p) as the int or float it is
            if x is True or x is False:
                if k.is_bool[i]:
                    out[i] = 1.0 if x else 0.0
                    continue
            elif (type(x) is int or type(x) is float) and x in k.choices[i]:
                out[i] = x
                continue
            out[i] = _validate().check_param(k.spec.floats[i], x)
            continue
        if type(x) is float:
            v = x
            if isfinite(v) and (v > k.lo[i] if k.lo_open[i] else v >= k.lo[i]) and \
                    (v < k.hi[i] if k.hi_open[i] else v <= k.hi[i]):
                out[i] = v
                continue
        out[i] = _validate().check_param(k.spec.floats[i], x)
    for i in range(k.n_float, FL_MAX_PARAMS):
        out[i] = 0.0
    return 0


cdef int _params_in_f32(Kernel k, const double *p) except -1:
    cdef int i
    for i in range(k.n_float):
        if not _f32_ok(p[i], k.scale_like[i]):
            _validate().param_in_dtype(p[i], _validate().F32, k.spec.floats[i].name,
                                       scale_like=k.scale_like[i])
    return 0


cdef inline bint _canonical(object a, int tn):
    """An exact ndarray of type number tn (any float type when tn is 0),
    C-contiguous, aligned and native: used as it is."""
    cdef int t
    if type(a) is not cnp.ndarray:
        return False
    t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if tn == 0:
        if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
            return False
    elif t != tn:
        return False
    return cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a) and \
        cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)


cdef inline bint _same_dims(cnp.ndarray a, int nd, cnp.npy_intp *dims):
    cdef int i
    if cnp.PyArray_NDIM(a) != nd:
        return False
    for i in range(nd):
        if cnp.PyArray_DIM(a, i) != dims[i]:
            return False
    return True


cdef inline bint _buffer_ok(object b, int tn, int nd, cnp.npy_intp *dims, bint used):
    """An out / grad_out that needs no Python-level check: None, or used and an
    exact, writable, canonical ndarray of the result's shape (aliasing is
    checked on every buffer by _check_outputs)."""
    if b is None:
        return True
    return used and _canonical(b, tn) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>b) and \
        _same_dims(<cnp.ndarray>b, nd, dims)


cdef object _new(int nd, cnp.npy_intp *dims, int tn):
    return cnp.PyArray_EMPTY(nd, dims, tn, 0)


cdef object _finish(int red, const fl_result *res, int tn, object loss_out, object grad,
                    bint return_grad, object user_out, object user_grad, double batch,
                    object hess=None, object user_hess=None):
    """The value a loss returns: the per-element/row array for "none" (the
    caller's own out object when given), else the sum or the mean (NaN over
    nothing; "batchmean": the sum over `batch`) as a NumPy scalar of the compute
    dtype; with the gradient (the caller's grad_out object when given) and the
    hessian when there is one (hess not None)."""
    cdef double total = res.acc[0], denom = res.acc[1]
    cdef float total32
    if red == RED_BATCHMEAN:
        red = FL_REDUCE_MEAN
        denom = batch
    if red == FL_REDUCE_NONE:
        loss = user_out if user_out is not None else loss_out
    else:
        if red == FL_REDUCE_MEAN:
            total = total / denom if denom != 0 else float("nan")
        if tn == cnp.NPY_FLOAT32:
            # a C cast: beyond float32's range it is inf without a NumPy warning
            total32 = <float>total
            loss = PyArray_Scalar(&total32, _DESCR_F32, None)
        else:
            loss = PyArray_Scalar(&total, _DESCR_F64, None)
    if not return_grad:
        return loss
    if hess is not None:
        return (loss, (user_grad if user_grad is not None else grad),
                (user_hess if user_hess is not None else hess))
    return loss, (user_grad if user_grad is not None else grad)


cdef int _status(int status, const fl_result *res, object target, fl_index n_classes,
                 Kernel k, tuple read) except -1:
    """Raises what a kernel's status says (read: the arrays as the kernel read them,
    for the message of a value outside the loss's domain)."""
    if status == FL_OK:
        return 0
    if status == FL_E_INTERRUPTED:
        _raise_pending()
        raise KeyboardInterrupt
    if status == FL_E_INDEX:
        raise IndexError(index_message(target, res.bad_pos, res.bad_value, n_classes))
    if status == FL_E_DOMAIN:
        raise ValueError(domain_message(k, read[res.bad_value], res.bad_value, res.bad_pos))
    if status == FL_E_NOMEM:
        raise MemoryError("fusedloss: no memory for the scratch rows of a strided class axis")
    raise RuntimeError(f"fusedloss kernel failed with status {status}")


cdef inline int _dtype_f32(int tn):
    return tn == cnp.NPY_FLOAT32


cdef tuple _outputs(int red, bint return_grad, object out, object grad_out, int tn,
                    int nd, int loss_nd, cnp.npy_intp *dims, object x, object xu, object t,
                    object tu, object wc, object wu, object pc, object pu,
                    cnp.npy_intp *ldims=NULL):
    """(out, grad_out): the caller's buffers, taken as they are when canonical,
    else checked by _validate (plain views of them); allocated where absent.
    Losses have the shape ldims[:loss_nd] (default: the first loss_nd axes of the
    input's nd)."""
    cdef int i
    if ldims == NULL:
        ldims = dims
    if not (_buffer_ok(out, tn, loss_nd, ldims, red == FL_REDUCE_NONE) and
            _buffer_ok(grad_out, tn, nd, dims, return_grad)):
        out, grad_out = _validate().check_outputs(
            _RED_NAMES[red], return_grad, out, grad_out,
            tuple([ldims[i] for i in range(loss_nd)]), x.shape, x.dtype,
            [tu, t, wu, wc, pu, pc], (xu, x))
    if red == FL_REDUCE_NONE and out is None:
        out = _new(loss_nd, ldims, tn)
    if return_grad and grad_out is None:
        grad_out = _new(nd, dims, tn)
    return out, grad_out


cdef object _hess_out(fl_args *args, bint return_grad, bint return_hess, object hess_out,
                      int tn, int nd, cnp.npy_intp *dims, fl_index n, object x, tuple others):
    """The hessian's buffer (None without return_hess), set as args.hess: the
    caller's hess_out, checked (it may overlap nothing in `others`: the inputs,
    out, grad_out), or a new array of the input's shape."""
    hess_out = _hess_buffer(return_grad, return_hess, hess_out, tn, nd, dims, x, others)
    args.hess = _buf(hess_out, tn, n, True, "hess_out")
    return hess_out


cdef object _hess_buffer(bint return_grad, bint return_hess, object hess_out, int tn, int nd,
                         cnp.npy_intp *dims, object x, tuple others):
    cdef object a
    if not return_hess:
        if hess_out is not None:
            raise ValueError("hess_out was given but return_hess is False")
        return None
    if not return_grad:
        raise ValueError("return_hess=True needs return_grad=True (the hessian comes "
                         "with the gradient: (loss, grad, hess))")
    if hess_out is None:
        return _new(nd, dims, tn)
    if not _buffer_ok(hess_out, tn, nd, dims, True):
        hess_out = _validate().check_buffer(hess_out, "hess_out", x.shape, x.dtype, [])
    for a in others:
        if a is not None and cnp.PyArray_Check(a) and \
                _overlap(<cnp.ndarray>hess_out, <cnp.ndarray>a):
            raise ValueError("hess_out overlaps another array of the call (an input, out or "
                             "grad_out): it may not alias anything")
    return hess_out


cdef object _call(Kernel k, int kid, int tn, int red, fl_args *a, object target,
                  fl_index n_classes, object out, object grad_out, bint return_grad,
                  object user_out, object user_grad, tuple read=(), fl_index batch=1,
                  object hess=None, object user_hess=None):
    """Runs kernel kid with the GIL released; raises what its status says; the
    value the loss returns.  "batchmean" runs as a sum with the gradient over
    `batch` (the first axis's length)."""
    cdef fl_result res
    cdef int status, f32 = _dtype_f32(tn)
    a.grad_scale = 1.0
    a.reduction = red
    if red == RED_BATCHMEAN:
        a.reduction = FL_REDUCE_SUM
        a.grad_scale = 1.0 / batch if batch > 0 else 0.0
    with nogil:
        status = fl_run(kid, f32, a, &res)
    _status(status, &res, target, n_classes, k, read)
    return _finish(red, &res, tn, out, grad_out, return_grad, user_out, user_grad,
                   <double>batch, hess, user_hess)


def elementwise(Kernel k, input, target, tuple params, weight, weight2, reduction,
                bint return_grad, out, grad_out, n_threads, bint return_hess=False,
                hess_out=None):
    """An element-wise loss: input and target of one shape, a loss per element.

    params: the spec's float parameters in order; weight / weight2: the spec's
    broadcast weights (None when absent or not taken); return_hess / hess_out:
    the hessian's diagonal (losses whose spec has one)."""
    cdef int red = _reduction(reduction, k.batchmean)
    cdef fl_args a
    cdef fl_index wshape[FL_BCAST_MAXDIM]
    cdef fl_index wstride[FL_BCAST_MAXDIM]
    cdef fl_index pshape[FL_BCAST_MAXDIM]
    cdef fl_index pstride[FL_BCAST_MAXDIM]
    cdef int tn, nd
    cdef fl_index n
    memset(&a, 0, sizeof(a))
    _params(k, params, a.param)
    xu = x = input
    if not _canonical(input, 0):
        xu, x = _validate().numeric_input(input, k.names[0])
    tn = cnp.PyArray_TYPE(<cnp.ndarray>x)
    nd = cnp.PyArray_NDIM(<cnp.ndarray>x)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(<cnp.ndarray>x)
    tu = t = target
    if not (_canonical(target, tn) and _same_dims(<cnp.ndarray>target, nd, dims)):
        tu, t = _validate().elementwise_target(target, k.names, xu, x.dtype)
    if _dtype_f32(tn):
        _params_in_f32(k, a.param)
    a.n_threads = _threads(n_threads)
    n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    wu = wc = pu = pc = wdesc = pdesc = None
    if weight is not None:
        wu, wc, wdesc = _validate().broadcast_weight(weight, x.shape, x.dtype,
                                                     k.weight_names[0])
    if weight2 is not None:
        pu, pc, pdesc = _validate().broadcast_weight(weight2, x.shape, x.dtype,
                                                     k.weight_names[1])
    user_out, user_grad = out, grad_out
    out, grad_out = _outputs(red, return_grad, out, grad_out, tn, nd, nd, dims, x, xu, t, tu,
                             wc, wu, pc, pu)
    a.n = n
    a.input[0] = _buf(x, tn, n, False, k.names[0])
    a.target = _buf(t, tn, n, False, k.names[1])
    a.weight = _bcast(wdesc, tn, n, "weight", wshape, wstride)
    a.weight2 = _bcast(pdesc, tn, n, "pos_weight", pshape, pstride)
    a.loss_out = _buf(out, tn, n, True, "out")
    a.grad[0] = _buf(grad_out, tn, n, True, "grad_out")
    readers = _with_user(x, xu, t, tu, wc, wu, pc, pu)
    _check_outputs(readers, out, grad_out)
    user_hess = hess_out
    hess_out = _hess_out(&a, return_grad, return_hess, hess_out, tn, nd, dims, n, x,
                         readers + (out, grad_out, user_out, user_grad))
    return _call(k, k.kid, tn, red, &a, t, 0, out, grad_out, return_grad, user_out, user_grad,
                 (x, t), dims[0] if nd > 0 else 1, hess_out, user_hess)


def class_axis(Kernel k, logits, target, weight, ignore_index, tuple params, reduction,
               bint return_grad, out, grad_out, n_threads, bint return_hess=False,
               hess_out=None, axis=-1):
    """A loss over a class axis (`axis`, the last by default): logits of shape
    (..., C, ...), targets class indices of the logits' shape without the class
    axis, or probabilities of the logits' shape; a loss per row (per position of
    the other axes).  A class axis in the middle is computed in place of the
    layout (the kernel's class stride), never through a transposed copy."""
    cdef int red = _reduction(reduction)
    cdef fl_args a
    cdef int tn, nd, i, ax
    cdef fl_index C, n_rows = 1, n, inner = 1
    cdef bint probs
    cdef cnp.npy_intp ldims[64]  # the loss's shape: the logits' without the class axis
    memset(&a, 0, sizeof(a))
    xu = x = logits
    if not _canonical(logits, 0):
        xu, x = _validate().numeric_input(logits, k.names[0])
    nd = cnp.PyArray_NDIM(<cnp.ndarray>x)
    if nd == 0:
        raise ValueError(f"{k.names[0]} must have at least one dimension (the class axis)")
    if type(axis) is int and -nd <= axis < nd:
        ax = <int>axis
        if ax < 0:
            ax += nd
    else:
        ax = _validate().class_axis(axis, nd)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(<cnp.ndarray>x)
    C = dims[ax]
    for i in range(nd):
        if i != ax:
            n_rows *= dims[i]
            ldims[i if i < ax else i - 1] = dims[i]
        if i > ax:
            inner *= dims[i]
    if C == 0 and n_rows != 0:
        raise ValueError(f"{k.names[0]} of shape {x.shape} have no classes (axis {ax} is "
                         "empty)")
    tn = cnp.PyArray_TYPE(<cnp.ndarray>x)
    _params(k, params, a.param)
    cdef int overflow = 1
    if type(ignore_index) is int:
        a.ignore_index = PyLong_AsLongLongAndOverflow(ignore_index, &overflow)
    if overflow:
        a.ignore_index = _validate().int_param(ignore_index, "ignore_index")
    a.n_threads = _threads(n_threads)
    tu = t = target
    if _canonical(target, cnp.NPY_INT64) and _same_dims(<cnp.ndarray>target, nd - 1, ldims):
        probs = False
    elif _canonical(target, tn) and _same_dims(<cnp.ndarray>target, nd, dims):
        probs = True
    else:
        probs, tu, t = _validate().class_targets(target, xu, x.dtype, ax)
    if probs and k.index_only:
        raise ValueError(f"{k.spec.name} takes integer class indices of shape "
                         f"{_validate().batch_text(k.names[0], x.shape, ax)} as target, not "
                         "class probabilities")
    if probs and a.ignore_index != -100:
        raise ValueError("ignore_index is only supported for class-index targets, not "
                         "probability targets")
    if _dtype_f32(tn):
        _params_in_f32(k, a.param)
    wu = wc = None
    if weight is not None:
        wu = wc = weight
        if not (_canonical(weight, tn) and cnp.PyArray_NDIM(<cnp.ndarray>weight) == 1
                and cnp.PyArray_DIM(<cnp.ndarray>weight, 0) == C):
            wu, wc = _validate().class_weight(weight, C, x.dtype, k.weight_names[0])
    user_out, user_grad = out, grad_out
    out, grad_out = _outputs(red, return_grad, out, grad_out, tn, nd, nd - 1, dims, x, xu, t,
                             tu, wc, wu, None, None, ldims)
    if C > 0 and n_rows > (<fl_index>1 << 62) // C:
        raise ValueError("shape too large")
    n = n_rows * C
    a.n = n_rows
    a.n_classes = C
    a.class_stride = inner if inner > 1 else 1
    a.input[0] = _buf(x, tn, n, False, k.names[0])
    a.target = _buf(t, tn if probs else cnp.NPY_INT64, n if probs else n_rows, False,
                    k.names[1])
    a.weight = _bcast(None, tn, 0, "weight", NULL, NULL)
    a.weight2 = a.weight
    a.weight.ptr = _buf(wc, tn, C, False, k.weight_names[0])
    a.loss_out = _buf(out, tn, n_rows, True, "out")
    a.grad[0] = _buf(grad_out, tn, n, True, "grad_out")
    readers = _with_user(x, xu, t, tu, wc, wu, None, None)
    _check_outputs(readers, out, grad_out)
    user_hess = hess_out
    hess_out = _hess_out(&a, return_grad, return_hess, hess_out, tn, nd, dims, n, x,
                         readers + (out, grad_out, user_out, user_grad))
    return _call(k, k.kid2 if probs else k.kid, tn, red, &a, tu, C, out, grad_out,
                 return_grad, user_out, user_grad, (), 1, hess_out, user_hess)


cdef object _as_input(object a, str name, object dtype, tuple shape, str what):
    """(the user's array, it converted to dtype, C-contiguous), of exactly `shape`."""
    if _canonical(a, 0) and a.dtype == dtype and a.shape == shape:
        return a, a
    V = _validate()
    u = V.as_numeric(a, name)
    if u.shape != shape:
        raise ValueError(f"{name} has shape {u.shape}, expected {shape} ({what})")
    return u, V.contiguous(u, dtype)


def multi(Kernel k, tuple inputs, tuple params, reduction, bint return_grad, out, grad_out,
          n_threads):
    """Per-sample losses (kind "sample": the first axis is the sample axis) and losses
    of several differentiable inputs (kind "multi": the spec's first n_grads inputs,
    of one shape; a loss per element, or per row of the last axis; a target, when the
    loss has one, of the loss's shape).  Several gradients come back as a tuple and
    grad_out takes one (entries None or arrays; an array may be its own input)."""
    cdef int red = _reduction(reduction)
    cdef fl_args a
    cdef int tn, nd, i, n_diff, loss_nd
    cdef fl_index n_rows = 1, F = 1, n
    memset(&a, 0, sizeof(a))
    spec = k.spec
    names = k.names
    _params(k, params, a.param)
    xu = x = inputs[0]
    if not _canonical(x, 0):
        xu, x = _validate().numeric_input(x, names[0])
    tn = cnp.PyArray_TYPE(<cnp.ndarray>x)
    nd = cnp.PyArray_NDIM(<cnp.ndarray>x)
    shape = x.shape
    dtype = x.dtype
    sample = spec.kind == "sample"
    n_diff = 1 if sample else spec.n_grads
    if (sample or spec.rows) and nd == 0:
        raise ValueError(f"{names[0]} must have at least one dimension"
                         + (" (the sample axis)" if sample else " (rows are the last axis)"))
    # the losses have the input's first loss_nd axes; each sums the other axes' F elements
    loss_nd = 1 if sample else (nd - 1 if spec.rows else nd)
    loss_shape = shape[:loss_nd]
    for d in loss_shape:
        n_rows *= d
    for d in shape[loss_nd:]:
        F *= d
    n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    users = [xu]
    conv = [x]
    for i in range(1, len(inputs)):
        # the differentiable inputs (and Dice's target) have the input's shape; a
        # target of the others the loss's
        same = sample or i < n_diff
        u, c = _as_input(inputs[i], names[i], dtype, shape if same else loss_shape,
                         f"the shape of {names[0]}" if same or not spec.rows
                         else f"{names[0]}.shape[:-1]")
        users.append(u)
        conv.append(c)
    if _dtype_f32(tn):
        _params_in_f32(k, a.param)
    a.n_threads = _threads(n_threads)
    user_out = out
    V = None
    everything = [v for v in users + conv if cnp.PyArray_Check(v)]
    if out is not None and not _buffer_ok(out, tn, loss_nd, cnp.PyArray_DIMS(
            <cnp.ndarray>x), red == FL_REDUCE_NONE):
        V = _validate()
        if red != FL_REDUCE_NONE:
            raise ValueError(f"out is only used with reduction='none', not {_RED_NAMES[red]!r}")
        out = V.check_buffer(out, "out", loss_shape, dtype, everything)
    if grad_out is not None and not return_grad:
        raise ValueError("grad_out was given but return_grad is False")
    if n_diff == 1:
        given = [grad_out]
    elif grad_out is None:
        given = [None] * n_diff
    else:
        if not isinstance(grad_out, (tuple, list)) or len(grad_out) != n_diff:
            raise ValueError(f"grad_out must be a tuple of {n_diff} arrays (or None entries) "
                             f"for {spec.name}, one per input {', '.join(names[:n_diff])}")
        given = list(grad_out)
    user_grads = list(given)
    grads = [None] * n_diff
    if return_grad:
        V = _validate()
        for i in range(n_diff):
            gname = "grad_out" if n_diff == 1 else f"grad_out[{i}]"
            if given[i] is not None and _buffer_ok(given[i], tn, nd, cnp.PyArray_DIMS(
                    <cnp.ndarray>x), True):
                grads[i] = given[i]  # canonical: aliasing checked below on the real buffers
            elif given[i] is not None:
                others = [v for j, v in enumerate(everything) if v is not conv[i]]
                g = V.check_buffer(given[i], gname, shape, dtype, others, allowed=conv[i])
                if users[i] is not conv[i] and cnp.PyArray_Check(users[i]) and \
                        _overlap(<cnp.ndarray>g, <cnp.ndarray>users[i]):
                    raise ValueError(f"{gname} overlaps {names[i]} but {names[i]} is not a "
                                     "C-contiguous array of the compute dtype, so it cannot "
                                     "be overwritten in place")
                grads[i] = g
            else:
                grads[i] = _new(nd, cnp.PyArray_DIMS(<cnp.ndarray>x), tn)
    if red == FL_REDUCE_NONE and out is None:
        out = _new(loss_nd, cnp.PyArray_DIMS(<cnp.ndarray>x), tn)
    a.n = n_rows
    a.n_classes = F
    for i in range(len(inputs)):
        if sample or i < n_diff:
            a.input[i] = _buf(conv[i], tn, n, False, names[i])
        else:
            a.target = _buf(conv[i], tn, n_rows, False, names[i])
    a.loss_out = _buf(out, tn, n_rows, True, "out")
    for i in range(n_diff):
        a.grad[i] = _buf(grads[i], tn, n, True, "grad_out")
    _check_multi(conv, users, out, grads)
    result_grads = grads[0] if n_diff == 1 else tuple(
        user_grads[i] if user_grads[i] is not None else grads[i] for i in range(n_diff))
    return _call(k, k.kid, tn, red, &a, None, 0, out, result_grads if return_grad else None,
                 return_grad, user_out, user_grads[0] if n_diff == 1 else None)


cdef int _check_multi(list conv, list users, object out, list grads) except -1:
    """The aliasing rules on the real buffers: out overlaps nothing; gradient i
    overlaps nothing but, exactly, its own (converted) input i."""
    cdef Py_ssize_t i, j
    arrays = [v for v in conv + users if v is not None and cnp.PyArray_Check(v)]
    if out is not None:
        for v in arrays + [g for g in grads if g is not None]:
            if _overlap(<cnp.ndarray>out, <cnp.ndarray>v):
                raise ValueError("out overlaps an input or gradient array")
    for i in range(len(grads)):
        g = grads[i]
        if g is None:
            continue
        for j in range(len(grads)):
            if j != i and grads[j] is not None and _overlap(<cnp.ndarray>g, <cnp.ndarray>grads[j]):
                raise ValueError("two grad_out arrays overlap")
        for v in arrays:
            if not _overlap(<cnp.ndarray>g, <cnp.ndarray>v):
                continue
            if v is conv[i] and cnp.PyArray_DATA(<cnp.ndarray>g) == \
                    cnp.PyArray_DATA(<cnp.ndarray>v) and \
                    cnp.PyArray_NBYTES(<cnp.ndarray>g) == cnp.PyArray_NBYTES(<cnp.ndarray>v):
                if not any(w is not v and _overlap(<cnp.ndarray>g, <cnp.ndarray>w)
                           for w in conv):
                    continue
            raise ValueError("grad_out overlaps an input array")
    return 0


_DOMAIN_TEXT = {
    "prob": "is outside [0, 1] ({name} takes probabilities)",
    "sign": "is not a label in {{-1, +1}} ({name} takes labels -1 and +1)",
}


def domain_message(Kernel k, arr, int which, Py_ssize_t pos):
    """'input[3, 1] = 1.5 is outside [0, 1] (...)': a value outside a loss's domain,
    at its multi-index in `arr` (the array the kernel read)."""
    spec = k.spec
    domain = spec.input_domain if which == 0 else spec.target_domain
    shape = arr.shape
    where = []
    rem = pos
    for d in reversed(shape):
        where.append(rem % d if d else 0)
        rem = rem // d if d else 0
    where.reverse()
    value = arr.reshape(-1)[pos]
    name = k.names[which]
    label = name if not shape else name + "[" + ", ".join(str(i) for i in where) + "]"
    return f"{label} = {value} " + _DOMAIN_TEXT[domain].format(name=spec.name)


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


cdef inline bint _f32_ok(double v, bint scale_like) noexcept:
    """Whether float32 can hold parameter v (as _validate.param_in_dtype): finite
    there, and for a scale-like one 0 or in float32's normal range."""
    cdef double a = v if v >= 0 else -v
    if a > 3.4028234663852886e38:
        return False
    return not scale_like or v == 0 or a >= 1.1754943508222875e-38


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
