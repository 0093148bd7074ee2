"""Argument checking and normalisation shared by every loss.

All validation happens here, in the Python layer, before anything is
written: the C kernels assume valid, C-contiguous arrays of the compute dtype.
"""
import math
import operator

import numpy as np

REDUCTIONS = ("mean", "sum", "none")
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def as_numeric(x, name):
    """np.asarray(x), refusing non-numeric dtypes with a TypeError."""
    a = np.asarray(x)
    kind = a.dtype.kind
    if kind not in "biuf":
        raise TypeError(
            f"{name} must be a real numeric array (bool, integer or floating), "
            f"got dtype {a.dtype}"
        )
    return a


def compute_dtype(dt):
    """float32 and float64 stay; float16 -> float32; ints, bool, longdouble -> float64."""
    if dt.kind == "f" and dt.itemsize <= 4:
        return _F32
    return _F64


def contiguous(a, dtype):
    """C-contiguous, aligned, native-order array of `dtype`; no copy when `a` already is one.

    Misaligned arrays (e.g. views at an odd byte offset of a byte buffer) are copied: the C
    kernels dereference typed pointers, which must be aligned."""
    if a.dtype is dtype and a.flags.c_contiguous and a.flags.aligned:
        return a
    # Values beyond the compute dtype's range become +-inf, silently: non-finite values
    # propagate and never warn or raise (as in the kernels).
    with np.errstate(over="ignore", invalid="ignore"):
        c = np.asarray(a, dtype=dtype, order="C")
    return c if c.flags.aligned else c.copy()


def check_reduction(reduction):
    if reduction.__class__ is not str or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _not_real(value):
    """Whether `value` is certainly not a real scalar, although float() might accept it
    (strings, complex numbers, arrays with more than 0 dimensions or of a non-real dtype)."""
    if isinstance(value, (str, bytes, bytearray, memoryview, complex)):
        return True
    if isinstance(value, (np.ndarray, np.generic)):
        return value.ndim != 0 or value.dtype.kind not in "biuf"
    return False


def finite_param(value, name):
    """A finite real scalar parameter as a Python float.

    TypeError for anything that is not a real number (strings, complex, arrays of more
    than one element, None, ...), ValueError for NaN, infinities and values too large
    for a float."""
    if value.__class__ is float and math.isfinite(value):
        return value
    if _not_real(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite, got a value too large "
                         f"for a float ({type(value).__name__})") from None
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def int_param(value, name):
    if value.__class__ is int and -(2**63) <= value < 2**63:
        return value
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if not -(2**63) <= v < 2**63:
        raise ValueError(f"{name} must fit in 64 bits, got {v}")
    return v


def _data_ptr(a):
    return a.__array_interface__["data"][0]


def _overlaps(buf, arrays):
    for a in arrays:
        if a is not None and np.may_share_memory(buf, a):
            return True
    return False


def check_buffer(buf, name, shape, dtype, inputs, allowed=None):
    """Validates a caller-supplied output buffer.

    It must be a writable, C-contiguous ndarray of exactly `shape` and `dtype`,
    overlapping none of `inputs`.  `allowed` is the one array it may coincide
    with exactly (the logits, for grad_out): same memory, same layout.
    """
    if not isinstance(buf, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(buf).__name__}")
    if buf.shape != shape:
        raise ValueError(f"{name} has shape {buf.shape}, expected {shape}")
    if buf.dtype != dtype:
        raise ValueError(
            f"{name} has dtype {buf.dtype}, expected the compute dtype {dtype}"
            + (" (native byte order)" if buf.dtype.newbyteorder("=") == dtype else "")
        )
    if not buf.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not buf.flags.writeable:
        raise ValueError(f"{name} must be writable")
    if not buf.flags.aligned:
        raise ValueError(f"{name} must be aligned to its dtype (got a misaligned view)")
    if buf.size == 0:
        return buf
    if allowed is not None and (buf is allowed or (
            np.may_share_memory(buf, allowed) and _data_ptr(buf) == _data_ptr(allowed))):
        # Exactly the allowed array (same start, shape, dtype and contiguity).
        if _overlaps(buf, inputs):
            raise ValueError(f"{name} overlaps another input array")
        return buf
    if allowed is not None and np.may_share_memory(buf, allowed):
        raise ValueError(f"{name} partially overlaps the logits; pass the logits array itself "
                         "to compute the gradient in place")
    if _overlaps(buf, inputs):
        raise ValueError(f"{name} overlaps an input array")
    return buf


def check_outputs(reduction, return_grad, out, grad_out, loss_shape, grad_shape, dtype,
                  inputs, logits_arrays):
    """Validates out / grad_out; returns them (None when not given).

    inputs: the arrays (user's and converted) that no buffer may overlap.
    logits_arrays: (user's logits, converted logits); grad_out may be exactly the
    converted logits, and out may overlap neither.
    """
    if out is None and grad_out is None:
        return None, None
    user_logits, logits_c = logits_arrays
    if out is not None:
        if reduction != "none":
            raise ValueError(f"out is only used with reduction='none', not {reduction!r}")
        check_buffer(out, "out", loss_shape, dtype, inputs + [user_logits, logits_c])
    if grad_out is not None:
        if not return_grad:
            raise ValueError("grad_out was given but return_grad is False")
        check_buffer(grad_out, "grad_out", grad_shape, dtype, inputs, allowed=logits_c)
        if user_logits is not logits_c and np.may_share_memory(grad_out, user_logits):
            raise ValueError("grad_out overlaps the logits but the logits are not a "
                             "C-contiguous array of the compute dtype, so they cannot be "
                             "overwritten in place")
        if out is not None and np.may_share_memory(out, grad_out):
            raise ValueError("out and grad_out overlap")
    return out, grad_out


def bcast_descriptor(w, shape, name):
    """Describes `w` (already of the compute dtype) broadcast to `shape` for the C
    kernels as (array, cols, rs, cs): element i uses array[(i // cols) * rs +
    (i % cols) * cs].  Weights that vary only over trailing axes (cs=1, rs=0) or
    only over leading axes (cs=0, rs=1) are used in place; other patterns are
    materialised."""
    n = math.prod(shape)
    if n == 0:
        return None
    if w.size == 1:
        return (w.reshape(1), n, 0, 0)
    ws = (1,) * (len(shape) - w.ndim) + w.shape
    dims = [(shape[a], ws[a] != 1) for a in range(len(shape)) if shape[a] != 1]
    flags = [v for _, v in dims]
    if flags[-1]:
        k = flags.index(True)
        if all(flags[k:]):  # varies over a trailing block only
            return (w.reshape(-1), math.prod(s for s, _ in dims[k:]), 0, 1)
    else:
        k = flags.index(False)
        if not any(flags[k:]) and all(flags[:k]):  # varies over a leading block only
            return (w.reshape(-1), math.prod(s for s, _ in dims[k:]), 1, 0)
    full = np.ascontiguousarray(np.broadcast_to(w, shape)).reshape(-1)
    return (full, n, 0, 1)


def broadcast_weight(w, shape, dtype, name):
    """Checks that weight-like `w` broadcasts to `shape`; returns (converted, descriptor)."""
    a = as_numeric(w, name)
    try:
        ok = a.ndim <= len(shape) and np.broadcast_shapes(a.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {a.shape} cannot be broadcast to the input "
                         f"shape {tuple(shape)}")
    c = contiguous(a, dtype)
    return a, c, bcast_descriptor(c, tuple(shape), name)
