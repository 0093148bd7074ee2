"""Argument checking and normalisation shared by every loss.

All validation happens here, in the Python layer, before anything is
written: the C kernels assume valid, C-contiguous arrays of the compute dtype.
"""

import math
import operator
import sys

import numpy as np

REDUCTIONS = ("mean", "sum", "none")
_F32 = F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)
_INT64_MAX = np.iinfo(np.int64).max
try:  # numpy >= 1.25
    _AxisError = np.exceptions.AxisError
except AttributeError:  # pragma: no cover
    _AxisError = np.AxisError


def reject_masked(x, name):
    """Masked arrays would lose their mask in the kernels: refuse them."""
    ma = sys.modules.get("numpy.ma")  # no masked array can exist before numpy.ma is loaded
    if ma is not None and isinstance(x, ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray; its mask would be ignored. Pass the data "
            f"(np.ma.getdata) and express the mask through the loss: a weight of 0 for "
            f"masked elements (weight=), or ignore_index for masked class indices"
        )


def to_array(x, name):
    """np.asarray(x) with clear errors: masked arrays and tensors that require grad are
    refused with a TypeError that says what to do; an ndarray subclass becomes a plain
    ndarray view of its own buffer (so overridden attributes cannot mislead the checks)."""
    if type(x) is np.ndarray:
        return x
    reject_masked(x, name)
    if type(x).__module__.startswith("torch") and getattr(x, "requires_grad", False) is True:
        raise TypeError(
            f"{name} is a torch.Tensor that requires grad; NumPy cannot read it without "
            f"detaching it from the autograd graph. Pass {name}.detach() (the gradient "
            f"comes back from return_grad=True), or use fusedloss.torch for autograd"
        )
    try:
        return np.asarray(x)
    except (TypeError, ValueError):
        raise
    except Exception as e:  # e.g. RuntimeError from a foreign __array__
        raise TypeError(
            f"{name} cannot be converted to a NumPy array: {type(e).__name__}: {e}"
        ) from None


def as_numeric(x, name):
    """to_array(x), refusing non-numeric dtypes with a TypeError."""
    a = to_array(x, name)
    kind = a.dtype.kind
    if kind not in "biuf":
        raise TypeError(
            f"{name} must be a real numeric array (bool, integer or floating), got dtype {a.dtype}"
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
    # dtypes compare by value: one that came through pickle is equal but not the same
    # object (== also tells byte orders apart)
    if a.dtype == dtype and a.flags.c_contiguous and a.flags.aligned:
        return a
    # Values beyond the compute dtype's range become +-inf, silently: non-finite values
    # propagate and never warn or raise (as in the kernels).
    with np.errstate(over="ignore", invalid="ignore"):
        c = np.asarray(a, dtype=dtype, order="C")
    return c if c.flags.aligned else c.copy()


def numeric_input(x, name):
    """(the user's array, it converted to its compute dtype, C-contiguous)."""
    a = as_numeric(x, name)
    return a, contiguous(a, compute_dtype(a.dtype))


def elementwise_target(target, names, x, dtype):
    """(the user's target array, it converted to dtype): an element-wise target must
    have exactly the input's shape."""
    t = as_numeric(target, names[1])
    if t.shape != x.shape:
        raise ValueError(
            f"{names[1]} has shape {t.shape} but {names[0]} has shape {x.shape}; "
            f"element-wise losses need exactly the same shape (no broadcasting)"
        )
    return t, contiguous(t, dtype)


def class_axis(axis, ndim):
    """The class axis as an int in [0, ndim): an integer (numpy's too, not a bool) in
    [-ndim, ndim), as numpy's ``axis`` (numpy's AxisError, a ValueError and IndexError,
    when out of range)."""
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        raise _AxisError(ax, ndim)
    return ax % ndim


def batch_text(name, shape, axis):
    """How the shape of class-index targets reads: ``logits.shape[:-1] = (4,)``."""
    batch = shape[:axis] + shape[axis + 1 :]
    if axis == len(shape) - 1:
        return f"{name}.shape[:-1] = {batch}"
    return f"{name}'s shape without axis {axis} = {batch}"


def class_targets(target, x, dtype, axis=-1):
    """(probabilities?, the user's target array, it converted) for logits x with the
    class axis `axis`: integer class indices of x's shape without that axis (int64), or
    floating probabilities of x's shape (dtype)."""
    axis %= x.ndim
    batch_shape, n_classes = x.shape[:axis] + x.shape[axis + 1 :], x.shape[axis]
    t = to_array(target, "target")
    kind = t.dtype.kind
    if kind == "b":
        raise TypeError("target must be integer class indices or floating probabilities, not bool")
    if kind in "iu":
        if t.shape != batch_shape:
            where = "the last axis" if axis == x.ndim - 1 else f"axis {axis}"
            raise ValueError(
                f"class-index target has shape {t.shape}, expected "
                f"{batch_text('logits', x.shape, axis)} (logits have {n_classes} classes on "
                f"{where})"
            )
        if t.dtype.kind == "u" and t.dtype.itemsize == 8 and t.size:
            # uint64 values above the int64 range cannot be valid class indices.
            big = np.flatnonzero(t.reshape(-1) > _INT64_MAX)
            if big.size:
                from ._kernels import index_message

                pos = int(big[0])
                raise IndexError(index_message(t, pos, int(t.reshape(-1)[pos]), n_classes))
        return False, t, contiguous(t, _I64)
    if kind == "f":
        if t.shape != x.shape:
            if t.shape == batch_shape:
                raise ValueError(
                    f"target of shape {t.shape} has the shape of class indices, but class "
                    f"indices must be integers (got dtype {t.dtype}); probability targets "
                    f"need the logits' shape {x.shape}"
                )
            raise ValueError(
                f"probability target has shape {t.shape}, expected the logits' shape {x.shape}"
            )
        return True, t, contiguous(t, dtype)
    raise TypeError(
        f"target must be integer class indices or floating probabilities, got dtype {t.dtype}"
    )


def class_weight(weight, n_classes, dtype, name="weight"):
    """(the user's class weights, converted): one per class."""
    w = as_numeric(weight, name)
    if w.shape != (n_classes,):
        raise ValueError(f"{name} must have shape ({n_classes},) (one per class), got {w.shape}")
    return w, contiguous(w, dtype)


def check_param(param, value):
    """A float or bool parameter of the registry (fusedloss._registry.Param): finite,
    in its range (or one of its choices); a bool must be a bool (numpy's too).
    Returned as a Python float (a bool as 1.0 / 0.0)."""
    if param.kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return 1.0 if value else 0.0
        raise TypeError(f"{param.name} must be a bool, got {value!r}")
    v = finite_param(value, param.name)
    if not param.in_range(v):
        raise ValueError(f"{param.name} must be {param.range_text()}, got {v}")
    return v


def check_reduction(reduction, allowed=REDUCTIONS):
    """The reduction as an exact str; str subclasses (numpy.str_) are accepted."""
    if isinstance(reduction, str):
        r = str.__str__(reduction)  # an exact str, whatever the subclass overrides
        if r in allowed:
            return r
    names = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
    raise ValueError(f"reduction must be {names}, got {reduction!r}")


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
        raise ValueError(
            f"{name} must be finite, got a value too large for a float ({type(value).__name__})"
        ) from None
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def param_in_dtype(value, dtype, name, scale_like=False):
    """A finite parameter that must also be representable in the compute dtype:
    float32 kernels compute with the parameter rounded to float32, so one that
    overflows there is refused; so is, for a scale-like parameter (Huber's delta,
    smooth-L1's beta), a non-zero value below float32's normal range, which would
    round to 0 or to a subnormal with few significant bits and change the loss
    (huber_loss(delta=1e-46) is 1e-46 |e| for large errors, not 0)."""
    if dtype == _F32:
        f32 = np.finfo(np.float32)
        if abs(value) > float(f32.max):
            with np.errstate(over="ignore"):
                rounded = np.float32(value)
            if not np.isfinite(rounded):
                raise ValueError(
                    f"{name} = {value!r} is too large for float32, the compute dtype of "
                    f"these inputs (largest {float(f32.max):.8g}); pass float64 arrays "
                    f"to use it"
                )
        if scale_like and value != 0 and abs(value) < float(f32.tiny):
            raise ValueError(
                f"{name} = {value!r} is below float32's normal range (smallest "
                f"{float(f32.tiny):.8g}), the compute dtype of these inputs, and would "
                f"lose its value there; pass float64 arrays to use it"
            )
    return value


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
    reject_masked(buf, name)
    # Checked on (and written through) a plain view of the real buffer: a subclass's
    # shape, dtype or flags attributes may say anything.
    buf = np.asarray(buf)
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
    if allowed is not None and (
        buf is allowed
        or (np.may_share_memory(buf, allowed) and _data_ptr(buf) == _data_ptr(allowed))
    ):
        # Exactly the allowed array (same start, shape, dtype and contiguity).
        if _overlaps(buf, inputs):
            raise ValueError(f"{name} overlaps another input array")
        return buf
    if allowed is not None and np.may_share_memory(buf, allowed):
        raise ValueError(
            f"{name} partially overlaps the logits; pass the logits array itself "
            "to compute the gradient in place"
        )
    if _overlaps(buf, inputs):
        raise ValueError(f"{name} overlaps an input array")
    return buf


def check_outputs(
    reduction, return_grad, out, grad_out, loss_shape, grad_shape, dtype, inputs, logits_arrays
):
    """Validates out / grad_out; returns plain-ndarray views of them (None when not
    given), which the kernels write through.

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
        out = check_buffer(out, "out", loss_shape, dtype, inputs + [user_logits, logits_c])
    if grad_out is not None:
        if not return_grad:
            raise ValueError("grad_out was given but return_grad is False")
        grad_out = check_buffer(grad_out, "grad_out", grad_shape, dtype, inputs, allowed=logits_c)
        if user_logits is not logits_c and np.may_share_memory(grad_out, user_logits):
            raise ValueError(
                "grad_out overlaps the logits but the logits are not a "
                "C-contiguous array of the compute dtype, so they cannot be "
                "overwritten in place"
            )
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
    return general_descriptor(w, shape)


def general_descriptor(w, shape):
    """(w, shape, strides) read in place through strides (0 along broadcast axes, in
    elements), with size-1 axes dropped and adjacent axes merged where the strides
    allow, so the kernel walks as few axes as possible."""
    view = np.broadcast_to(w, shape)
    item = w.itemsize
    dims = [(s, st // item) for s, st in zip(view.shape, view.strides) if s != 1]
    merged = []
    for s, st in dims:
        if merged and merged[-1][1] == s * st:
            # the previous axis steps over exactly this whole axis: one axis
            ps, _ = merged.pop()
            merged.append((ps * s, st))
        else:
            merged.append((s, st))
    if not merged:
        merged = [(1, 0)]
    return (w, tuple(s for s, _ in merged), tuple(st for _, st in merged))


def broadcast_to_shape(wshape, shape):
    """Whether an array of wshape broadcasts to exactly `shape` (NumPy's rules, any
    number of dimensions; np.broadcast_shapes stops at 32 arguments' worth)."""
    if len(wshape) > len(shape):
        return False
    for a, b in zip(reversed(wshape), reversed(shape)):
        if a != 1 and a != b:
            return False
    return True


def broadcast_weight(w, shape, dtype, name):
    """Checks that weight-like `w` broadcasts to `shape`; returns (converted, descriptor)."""
    a = as_numeric(w, name)
    if not broadcast_to_shape(a.shape, tuple(shape)):
        raise ValueError(
            f"{name} of shape {a.shape} cannot be broadcast to the input shape {tuple(shape)}"
        )
    c = contiguous(a, dtype)
    return a, c, bcast_descriptor(c, tuple(shape), name)
