"""Contexts, caches and sequences: the public API of include/patternkv.h over ctypes and numpy."""
import ctypes
import dataclasses
import math
import operator
import os
import threading
import weakref

import numpy as np

from . import _arrays
from ._lib import lib
from ._structs import (LOG_FN, AppendParamsC, AttentionParamsC, Backend, CacheConfigC, CacheStatsC, ContextParamsC,
                       DeviceInfoC, DeviceType, Feature, LogLevel, Mode, enum_value)
from .errors import InvalidArgumentError, ShapeError, check

c = ctypes


def version():
    """The library's version string, e.g. "0.1.0"."""
    return lib().pkv_version_string().decode()


def version_number():
    """MAJOR * 10000 + MINOR * 100 + PATCH."""
    return int(lib().pkv_version_number())


def status_string(status):
    """The library's fixed sentence for a status ("PKV_ERR_SHAPE: ...")."""
    return lib().pkv_status_string(int(status)).decode()


def last_error():
    """pkv_last_error(): the detailed message of the last error of a C call on this thread."""
    return lib().pkv_last_error().decode("utf-8", "replace")


def _uint(value, name, bits):
    try:
        v = operator.index(value)
    except TypeError:
        raise InvalidArgumentError(f"{name} must be an integer, not {type(value).__name__}") from None
    if isinstance(value, bool) or not 0 <= v < 1 << bits:
        raise InvalidArgumentError(f"{name} = {value!r} is outside [0, 2^{bits})")
    return v


def _path(path, name="path"):
    try:
        return os.fsencode(path)
    except TypeError:
        raise InvalidArgumentError(f"{name} must be a str or os.PathLike, not {type(path).__name__}") from None


def _init(struct, init_fn):
    """A zeroed ctypes struct filled by the library's pkv_*_init with this mirror's size (stable ABI)."""
    s = struct()
    check(lib(), init_fn(c.byref(s), c.sizeof(s)))
    return s


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """pkv_device_info."""
    backend: Backend
    index: int
    type: DeviceType
    name: str
    driver: str
    subgroup_size: int
    features: Feature
    memory_bytes: int

    @classmethod
    def _from_c(cls, d):
        return cls(Backend(d.backend), d.index, DeviceType(d.type), d.name.decode("utf-8", "replace"),
                   d.driver.decode("utf-8", "replace"), d.subgroup_size, Feature(d.features), d.memory_bytes)


@dataclasses.dataclass(frozen=True)
class CacheStats:
    """pkv_cache_stats: bytes by part, bits per element, shared blocks, budget."""
    bytes_codes: int
    bytes_scales: int
    bytes_indices: int
    bytes_masks: int
    bytes_padding: int
    bytes_patterns: int
    bytes_window: int
    bytes_reserved: int
    bytes_budget: int
    bytes_free: int
    blocks_used: int
    blocks_shared: int
    tokens_stored: int
    tokens_compressed: int
    bits_per_element: float
    n_seqs: int


class CacheConfig:
    """pkv_cache_config, starting from the library's defaults (pkv_cache_config_init):
    PATTERN mode, 2-bit K and V, group_size 0 (the mode's: 64 for PATTERN, 128 for DIRECT and FP16),
    window 0 (128 with the mode's group, else group_size), 24 patterns, bank_capacity 0 (= n_patterns: frozen banks), quantizer auto,
    memory_budget 256 MiB. Keyword arguments set fields: CacheConfig(n_layers=32, n_kv_heads=8, k_bits=4).
    mode takes a Mode, "pattern", "direct" or "fp16". CacheConfig.paper() starts from the paper's method
    instead (pkv_cache_config_init_paper); resolved() gives the values a cache is created with."""

    FIELDS = tuple(name for name, _ in CacheConfigC._fields_ if name != "struct_size")
    _U64 = ("memory_budget", "seed")

    def __init__(self, _init_fn=None, **fields):
        object.__setattr__(self, "_c", _init(CacheConfigC, _init_fn or lib().pkv_cache_config_init))
        for name, value in fields.items():
            setattr(self, name, value)

    @classmethod
    def paper(cls, **fields):
        """The paper's method: group 128, 32 patterns, banks of 256 that grow at flushes, min-max."""
        return cls(lib().pkv_cache_config_init_paper, **fields)

    def resolved(self):
        """A copy with the mode's defaults in place of group_size 0, bank_capacity 0 and quantizer auto."""
        out = CacheConfig(**self.as_dict())
        check(lib(), lib().pkv_cache_config_resolve(c.byref(out._c)))
        return out

    def __getattr__(self, name):
        if name in CacheConfig.FIELDS:
            value = getattr(self._c, name)
            return Mode(value) if name == "mode" else value
        raise AttributeError(f"pkv_cache_config has no field {name!r}")

    def __setattr__(self, name, value):
        if name not in CacheConfig.FIELDS:
            raise AttributeError(f"pkv_cache_config has no field {name!r} (fields: {', '.join(CacheConfig.FIELDS)})")
        if name == "mode":
            value = int(enum_value(Mode, value, "mode"))
        elif name == "kmeans_tol":
            if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
                raise InvalidArgumentError(f"kmeans_tol must be a number, not {type(value).__name__}")
            value = float(value)
        else:
            value = _uint(value, name, 64 if name in CacheConfig._U64 else 32)
        setattr(self._c, name, value)

    def __eq__(self, other):
        return isinstance(other, CacheConfig) and all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def __repr__(self):
        return "CacheConfig(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS) + ")"

    def as_dict(self):
        return {f: getattr(self, f) for f in self.FIELDS}


def _context_params(backend="auto", device_index=-1, device_name=None, cache_dir=None, log=None, log_level=None,
                    n_threads=0):
    """A pkv_context_params from keyword arguments, and the ctypes callback to keep alive with it."""
    p = _init(ContextParamsC, lib().pkv_context_params_init)
    p.backend = int(enum_value(Backend, backend, "backend"))
    if isinstance(device_index, bool) or not isinstance(device_index, (int, np.integer)) or device_index < -1:
        raise InvalidArgumentError(f"device_index must be an integer >= -1 (-1: the best device), not {device_index!r}")
    p.device_index = int(device_index)
    if device_name is not None:
        p.device_name = str(device_name).encode()
    if cache_dir is not None:
        p.cache_dir = _path(cache_dir, "cache_dir")
    p.n_threads = _uint(n_threads, "n_threads", 32)
    if log_level is not None:
        p.log_level = int(enum_value(LogLevel, log_level, "log_level"))
    callback = None
    if log is not None:
        if not callable(log):
            raise InvalidArgumentError("log must be a callable log(level: LogLevel, message: str)")

        def forward(level, message, _user):
            log(LogLevel(level), message.decode("utf-8", "replace"))

        callback = LOG_FN(forward)
        p.log = callback
    return p, callback


def list_devices(**params):
    """Every device of every backend that loads on this machine (pkv_list_devices). Takes the keyword
    arguments of Context (log=... receives the reasons of backends that do not load)."""
    p, _callback = _context_params(**params)
    L = lib()
    count = c.c_size_t(0)
    check(L, L.pkv_list_devices(c.byref(p), None, 0, c.byref(count)))
    while True:
        n = count.value
        arr = (DeviceInfoC * max(n, 1))()
        arr[0].struct_size = c.sizeof(DeviceInfoC)
        check(L, L.pkv_list_devices(c.byref(p), arr, n, c.byref(count)))
        if count.value <= n:
            return [DeviceInfo._from_c(arr[i]) for i in range(count.value)]


def f32_to_f16(a):
    """float32 -> float16 exactly as the library converts (round to nearest even, saturating to +-65504)."""
    a = _arrays.contiguous(_arrays.float_array(a, "a", dtypes={np.dtype(np.float32): None}), "a")
    out = np.empty(a.shape, dtype=np.float16)
    check(lib(), lib().pkv_f32_to_f16_array(a.ctypes.data, out.ctypes.data, a.size))
    return out


def f16_to_f32(a):
    """float16 -> float32 (exact)."""
    a = _arrays.contiguous(_arrays.float_array(a, "a", dtypes={np.dtype(np.float16): None}), "a")
    out = np.empty(a.shape, dtype=np.float32)
    check(lib(), lib().pkv_f16_to_f32_array(a.ctypes.data, out.ctypes.data, a.size))
    return out


class Context:
    """pkv_context: a backend on one device. Context(backend="cpu"), Context() for AUTO (a Vulkan or
    OpenCL GPU, else the CPU; $PKV_BACKEND and $PKV_DEVICE apply), device_index / device_name to pick a
    device, cache_dir for the pipeline/program cache, n_threads for the CPU backend, log=fn(level, message)
    with log_level to receive the library's messages. Calls on a context and its caches are serialised by a
    lock (the library wants one thread at a time per context). Use as a context manager, or close()."""

    def __init__(self, backend="auto", **params):
        p, self._log_callback = _context_params(backend, **params)
        self._lock = threading.RLock()
        self._caches = weakref.WeakSet()
        h = c.c_void_p()
        L = lib()
        check(L, L.pkv_context_create(c.byref(p), c.byref(h)))
        self._h = h

    def _handle(self):
        if self._h is None:
            raise InvalidArgumentError("the context is closed")
        return self._h

    def close(self):
        """Frees the context and every cache made on it that is still open."""
        with self._lock:
            for cache in list(self._caches):
                cache.close()
            if getattr(self, "_h", None) is not None:
                lib().pkv_context_free(self._h)
                self._h = None

    def __del__(self):
        try:
            if getattr(self, "_h", None) is not None:
                self.close()
        except Exception:  # interpreter shutdown: the module's globals may be gone already
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, fn, *args):
        check(lib(), fn(*args))

    @property
    def device(self):
        """The device the context runs on (DeviceInfo)."""
        return self.device_and_reason()[0]

    @property
    def why(self):
        """Why this backend and device were chosen (e.g. "auto: chose cpu (...); skipped vulkan: ...")."""
        return self.device_and_reason()[1]

    def device_and_reason(self):
        d = DeviceInfoC()
        d.struct_size = c.sizeof(d)
        why = c.create_string_buffer(1024)
        with self._lock:
            self._call(lib().pkv_context_device, self._handle(), c.byref(d), why, len(why))
        return DeviceInfo._from_c(d), why.value.decode("utf-8", "replace")

    def measure_read_bandwidth(self, nbytes=0):
        """The device's streaming-read bandwidth in GB/s (0 bytes: the library's default size)."""
        gbps = c.c_double()
        with self._lock:
            self._call(lib().pkv_measure_read_bandwidth, self._handle(), _uint(nbytes, "nbytes", 64), c.byref(gbps))
        return gbps.value

    def last_op_time(self):
        """Milliseconds of the context's last mine, flush or attention op."""
        ms = c.c_double()
        with self._lock:
            self._call(lib().pkv_last_op_time, self._handle(), c.byref(ms))
        return ms.value

    def create_cache(self, config=None, **fields):
        """A new Cache; config is a CacheConfig (default: CacheConfig()), fields override its fields."""
        return Cache(self, config, **fields)

    def load_cache(self, path):
        """A Cache loaded from a file written by Cache.save, on this context's backend."""
        return Cache._load(self, path)


class Sequence:
    """One sequence of a cache (pkv_seq). Made by Cache.new_sequence() or Sequence.fork()."""

    __slots__ = ("cache", "id")

    def __init__(self, cache, seq_id):
        self.cache = cache
        self.id = seq_id

    def __repr__(self):
        return f"Sequence({self.id})"

    def __eq__(self, other):
        return isinstance(other, Sequence) and other.cache is self.cache and other.id == self.id

    def __hash__(self):
        return hash((id(self.cache), self.id))

    def __int__(self):
        return self.id

    def append(self, layer, k, v):
        self.cache.append(self, layer, k, v)

    def append_layers(self, k, v, first_layer=0):
        self.cache.append_layers(self, k, v, first_layer=first_layer)

    def attention(self, layer, q, scale=None, out=None, k_new=None, v_new=None):
        """Attention for this one sequence: q [q_len, n_q_heads, head_dim] -> out of that shape, float32.
        k_new, v_new: the queries' own K/V [q_len, n_kv_heads, head_dim] when they are not cached yet."""
        q = _arrays.float_array(q, "q")
        _arrays.shaped(q, "q", (None, None, self.cache.head_dim), f"[q_len, n_q_heads, head_dim={self.cache.head_dim}]")
        if out is not None:
            out = _arrays.output(out, q.shape)[None]
        if k_new is not None or v_new is not None:
            k_new = None if k_new is None else _arrays.float_array(k_new, "k_new")[None]
            v_new = None if v_new is None else _arrays.float_array(v_new, "v_new")[None]
        return self.cache.attention([self], layer, q[None], scale=scale, out=out, k_new=k_new, v_new=v_new)[0]

    def read_kv(self, layer):
        return self.cache.read_kv(self, layer)

    def length(self, layer=0):
        return self.cache.seq_length(self, layer)

    def fork(self):
        return self.cache.fork(self)

    def free(self):
        self.cache.free_sequence(self)


def _seq_id(seq, cache=None):
    if isinstance(seq, Sequence):
        if cache is not None and seq.cache is not cache:
            raise InvalidArgumentError(f"{seq!r} belongs to another cache")
        return seq.id
    return _uint(seq, "sequence id", 32)


class Cache:
    """pkv_cache: one pool of compressed blocks for many sequences. Arrays are numpy float32 or float16,
    C-contiguous: K and V [n_tokens, n_kv_heads, head_dim]; q and out [n_seqs, q_len, n_q_heads, head_dim]."""

    def __init__(self, context, config=None, **fields):
        if not isinstance(context, Context):
            raise InvalidArgumentError("Cache(context, config): context must be a patternkv.Context")
        if config is None:
            config = CacheConfig()
        elif not isinstance(config, CacheConfig):
            raise InvalidArgumentError("config must be a patternkv.CacheConfig")
        if fields:
            config = CacheConfig(**{**config.as_dict(), **fields})
        self._ctx, self._h = context, None
        h = c.c_void_p()
        with context._lock:
            context._call(lib().pkv_cache_create, context._handle(), c.byref(config._c), c.byref(h))
        self._adopt(h)

    @classmethod
    def _load(cls, context, path):
        self = cls.__new__(cls)
        self._ctx, self._h = context, None
        h = c.c_void_p()
        with context._lock:
            context._call(lib().pkv_cache_load, context._handle(), _path(path), c.byref(h))
        self._adopt(h)
        return self

    def _adopt(self, h):
        self._h = h
        self._ctx._caches.add(self)
        cfg = self.config
        self.n_layers, self.n_kv_heads, self.head_dim = cfg.n_layers, cfg.n_kv_heads, cfg.head_dim

    def _handle(self):
        if self._h is None:
            raise InvalidArgumentError("the cache is closed")
        return self._h

    def _call(self, name, *args):
        with self._ctx._lock:
            check(lib(), getattr(lib(), name)(self._handle(), *args))

    def close(self):
        if getattr(self, "_h", None) is not None:
            with self._ctx._lock:
                if self._ctx._h is not None:  # else its context is gone already (a garbage cycle): leak, never crash
                    lib().pkv_cache_free(self._h)
                self._h = None

    def __del__(self):
        try:
            if getattr(self, "_h", None) is not None:
                self.close()
        except Exception:  # interpreter shutdown: the module's globals may be gone already
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def context(self):
        return self._ctx

    @property
    def config(self):
        """The cache's configuration (a copy; pkv_cache_get_config)."""
        cfg = CacheConfig()
        self._call("pkv_cache_get_config", c.byref(cfg._c))
        return cfg

    def new_sequence(self):
        out = c.c_uint32()
        self._call("pkv_seq_create", c.byref(out))
        return Sequence(self, out.value)

    def sequence(self, seq_id):
        """The Sequence object of an id (e.g. after load_cache: ids are kept by save and load)."""
        return Sequence(self, _seq_id(seq_id, self))

    def free_sequence(self, seq):
        self._call("pkv_seq_free", _seq_id(seq, self))

    def fork(self, seq):
        """A child sharing seq's compressed blocks and banks copy-on-write (its window is copied)."""
        out = c.c_uint32()
        self._call("pkv_seq_fork", _seq_id(seq, self), c.byref(out))
        return Sequence(self, out.value)

    def seq_length(self, seq, layer=0):
        n = c.c_uint32()
        self._call("pkv_seq_length", _seq_id(seq, self), _uint(layer, "layer", 32), c.byref(n))
        return n.value

    def append(self, seq, layer, k, v):
        """Appends post-RoPE K and V of n tokens of one layer: [n_tokens, n_kv_heads, head_dim] each, both
        float32 or both float16. The append that brings a layer to >= n_patterns tokens mines the banks (PATTERN)."""
        k, v, dtype = _arrays.tokens(k, v, self.n_kv_heads, self.head_dim)
        self._call("pkv_append", _seq_id(seq, self), _uint(layer, "layer", 32), k.shape[0], k.ctypes.data, v.ctypes.data,
                   int(dtype))

    def append_layers(self, seq, k, v, first_layer=0):
        """Appends the same n tokens to several layers at once: k and v [n_layers, n_tokens, n_kv_heads,
        head_dim] (both float32 or both float16) go to layers first_layer .. first_layer + n_layers - 1,
        batched on the device; the cache ends up as after append() of each layer in turn."""
        k = _arrays.float_array(k, "k")
        v = _arrays.float_array(v, "v")
        what = f"[n_layers, n_tokens, n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim}]"
        _arrays.shaped(k, "k", (None, None, self.n_kv_heads, self.head_dim), what)
        _arrays.shaped(v, "v", (None, None, self.n_kv_heads, self.head_dim), what)
        if k.shape[0] == 0:
            raise ShapeError("append_layers: no layers given")
        layers = [_arrays.tokens(k[i], v[i], self.n_kv_heads, self.head_dim) for i in range(k.shape[0])]
        p = _init(AppendParamsC, lib().pkv_append_params_init)
        p.seq = _seq_id(seq, self)
        p.first_layer = _uint(first_layer, "first_layer", 32)
        p.n_layers, p.n_tokens, p.dtype = k.shape[0], k.shape[1], int(layers[0][2])
        kp = (c.c_void_p * len(layers))(*[x[0].ctypes.data for x in layers])
        vp = (c.c_void_p * len(layers))(*[x[1].ctypes.data for x in layers])
        self._call("pkv_append_layers", c.byref(p), kp, vp)

    def attention(self, seqs, layer, q, scale=None, out=None, k_new=None, v_new=None):
        """Attention of a batch of sequences over one layer. q: [n_seqs, q_len, n_q_heads, head_dim] float32
        or float16, n_q_heads a multiple of n_kv_heads (GQA); q_len 1 is decode, q_len > 1 causal over
        the cache whose last q_len tokens are the queries' own, or, with k_new and v_new
        ([n_seqs, q_len, n_kv_heads, head_dim], both float32 or both float16), over the cache followed
        by those own tokens, which are not cached (decode: attend, then append the token to every layer).
        scale: None for 1/sqrt(head_dim). Returns out, float32 of q's shape (into `out` when given)."""
        if isinstance(seqs, (Sequence, int, np.integer)):
            seqs = [seqs]
        ids = [_seq_id(s, self) for s in seqs]
        if not ids:
            raise InvalidArgumentError("attention: no sequences given")
        q, q_dtype = _arrays.queries(q, len(ids), self.n_kv_heads, self.head_dim)
        out = _arrays.output(out, q.shape)
        if scale is None:
            scale = 0.0
        elif not isinstance(scale, (int, float, np.floating, np.integer)) or not math.isfinite(scale) or scale <= 0:
            raise InvalidArgumentError(f"scale must be a finite number > 0, or None for 1/sqrt(head_dim), not {scale!r}")
        p = _init(AttentionParamsC, lib().pkv_attention_params_init)
        seq_arr = (c.c_uint32 * len(ids))(*ids)
        p.seqs, p.n_seqs = seq_arr, len(ids)
        p.layer = _uint(layer, "layer", 32)
        p.q_len, p.n_q_heads = q.shape[1], q.shape[2]
        p.scale, p.q_dtype = float(scale), int(q_dtype)
        if k_new is not None or v_new is not None:
            if k_new is None or v_new is None:
                raise InvalidArgumentError("attention: give k_new and v_new together")
            own = [_arrays.tokens(k_new[i], v_new[i], self.n_kv_heads, self.head_dim) for i in range(len(ids))]
            if k_new.shape[:2] != (len(ids), q.shape[1]):
                raise ShapeError(f"k_new has shape {tuple(k_new.shape)}; expected [n_seqs={len(ids)}, q_len={q.shape[1]}, "
                                 f"n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim}]")
            k_new = np.ascontiguousarray(k_new)
            v_new = np.ascontiguousarray(v_new)
            p.k_new, p.v_new, p.kv_new_dtype = k_new.ctypes.data, v_new.ctypes.data, int(own[0][2])
        self._call("pkv_attention", c.byref(p), q.ctypes.data, out.ctypes.data)
        return out

    def read_kv(self, seq, layer):
        """Dequantized K and V of one layer: two float32 arrays [n_tokens, n_kv_heads, head_dim]."""
        n = self.seq_length(seq, layer)
        k = np.empty((n, self.n_kv_heads, self.head_dim), dtype=np.float32)
        v = np.empty_like(k)
        self._call("pkv_read_kv", _seq_id(seq, self), _uint(layer, "layer", 32), k.ctypes.data, v.ctypes.data)
        return k, v

    def stats(self):
        s = CacheStatsC()
        s.struct_size = c.sizeof(s)
        self._call("pkv_cache_stats_get", c.byref(s))
        return CacheStats(**{f.name: getattr(s, f.name) for f in dataclasses.fields(CacheStats)})

    def save(self, path):
        """Saves every sequence to a versioned, checksummed file (written to a temporary file, then renamed)."""
        self._call("pkv_cache_save", _path(path))

