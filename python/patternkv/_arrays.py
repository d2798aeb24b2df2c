"""Shape and dtype checks of the arrays handed to the library, before any of them reaches C."""
import numpy as np

from ._structs import DType
from .errors import DTypeError, InvalidArgumentError, ShapeError

_DTYPES = {np.dtype(np.float32): DType.F32, np.dtype(np.float16): DType.F16}


def _fmt(shape):
    return "(" + ", ".join(str(x) for x in shape) + ")"


def float_array(a, name, dtypes=_DTYPES):
    """a must be a numpy array of float32 or float16 (native byte order)."""
    if not isinstance(a, np.ndarray):
        raise DTypeError(f"{name} must be a numpy.ndarray of float32 or float16, not {type(a).__name__} "
                         f"(use numpy.asarray({name}, dtype=numpy.float32))")
    if a.dtype not in dtypes:
        allowed = " or ".join(str(d) for d in dtypes)
        raise DTypeError(f"{name} has dtype {a.dtype}; the library takes {allowed} in native byte order "
                         f"(use {name}.astype(numpy.float32))")
    return a


def contiguous(a, name, writeable=False):
    """a must be C-contiguous and aligned (the library reads it as one block of memory)."""
    if not a.flags.c_contiguous or not a.flags.aligned:
        raise InvalidArgumentError(f"{name} is not a C-contiguous, aligned array (use numpy.ascontiguousarray({name}))")
    if writeable and not a.flags.writeable:
        raise InvalidArgumentError(f"{name} is read-only")
    return a


def shaped(a, name, expected, what):
    """Checks a.shape against expected, where None matches any extent; `what` names the axes."""
    if a.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, a.shape)):
        want = _fmt("?" if e is None else e for e in expected)
        raise ShapeError(f"{name} has shape {_fmt(a.shape)}; expected {want}: {what}")
    return a


def tokens(k, v, n_kv_heads, head_dim):
    """K and V of an append: the same shape [n_tokens, n_kv_heads, head_dim] and the same dtype."""
    k = float_array(k, "k")
    v = float_array(v, "v")
    what = f"[n_tokens, n_kv_heads={n_kv_heads}, head_dim={head_dim}]"
    shaped(k, "k", (None, n_kv_heads, head_dim), what)
    shaped(v, "v", (None, n_kv_heads, head_dim), what)
    if k.shape != v.shape:
        raise ShapeError(f"k has shape {_fmt(k.shape)} but v has {_fmt(v.shape)}: the same number of tokens")
    if k.dtype != v.dtype:
        raise DTypeError(f"k is {k.dtype} but v is {v.dtype}: give both in one dtype")
    contiguous(k, "k")
    contiguous(v, "v")
    if k.shape[0] >= 1 << 32:
        raise ShapeError(f"k and v hold {k.shape[0]} tokens, more than one call takes")
    return k, v, _DTYPES[k.dtype]


def queries(q, n_seqs, n_kv_heads, head_dim):
    """q of an attention call: [n_seqs, q_len, n_q_heads, head_dim], n_q_heads a multiple of n_kv_heads."""
    q = float_array(q, "q")
    what = f"[n_seqs={n_seqs}, q_len, n_q_heads (a multiple of n_kv_heads={n_kv_heads}), head_dim={head_dim}]"
    shaped(q, "q", (n_seqs, None, None, head_dim), what)
    if q.shape[1] == 0 or q.shape[2] == 0 or q.shape[2] % n_kv_heads:
        raise ShapeError(f"q has shape {_fmt(q.shape)}; expected {what}")
    return contiguous(q, "q"), _DTYPES[q.dtype]


def output(out, shape):
    """The caller's output array, or a new one: float32 of q's shape."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    out = float_array(out, "out", dtypes={np.dtype(np.float32): DType.F32})
    return contiguous(shaped(out, "out", shape, "the shape of q, float32"), "out", writeable=True)
