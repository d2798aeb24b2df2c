"""ctypes mirrors of the public structs and enums of include/patternkv.h.

Every struct starts with uint32_t struct_size (the stable-ABI rule): the Python side fills it with its
own ctypes.sizeof, through pkv_*_init where the library has one, so a library that does not know the
size refuses it with a message instead of reading the wrong fields."""
import ctypes
import enum

c = ctypes


class Status(enum.IntEnum):
    OK = 0
    INVALID_ARGUMENT = 1
    INVALID_CONFIG = 2
    NONFINITE = 3
    SHAPE = 4
    UNKNOWN_SEQUENCE = 5
    LAYER_RANGE = 6
    OUT_OF_BUDGET = 7
    OUT_OF_DEVICE_MEMORY = 8
    OUT_OF_HOST_MEMORY = 9
    BACKEND_UNAVAILABLE = 10
    DEVICE = 11
    IO = 12
    CORRUPT_FILE = 13
    UNSUPPORTED = 14


class LogLevel(enum.IntEnum):
    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3


class Backend(enum.IntEnum):
    AUTO = 0
    CPU = 1
    VULKAN = 2
    OPENCL = 3


class DeviceType(enum.IntEnum):
    OTHER = 0
    DISCRETE_GPU = 1
    INTEGRATED_GPU = 2
    VIRTUAL_GPU = 3
    CPU = 4


class Feature(enum.IntFlag):
    FP16_MATH = 1 << 0
    STORAGE_8BIT = 1 << 1
    STORAGE_16BIT = 1 << 2
    INT_DOT = 1 << 3
    COOPERATIVE_MATRIX = 1 << 4
    SUBGROUPS = 1 << 5


class Mode(enum.IntEnum):
    PATTERN = 0  # pattern-aligned residual quantization (PatternKV)
    DIRECT = 1   # KIVI-style min/max quantization, no patterns
    FP16 = 2     # no quantization


class DType(enum.IntEnum):
    F32 = 0
    F16 = 1


def enum_value(kind, value, what):
    """An enum member from a member, its name (any case) or its integer value."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            return kind[value.upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in kind)
            raise ValueError(f"patternkv: {what} {value!r} is not one of {names}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"patternkv: {what} {value} is not a {kind.__name__} value") from None
    raise TypeError(f"patternkv: {what} must be a {kind.__name__}, its name or its value, not {type(value).__name__}")


LOG_FN = c.CFUNCTYPE(None, c.c_int, c.c_char_p, c.c_void_p)


class ContextParamsC(c.Structure):
    _fields_ = [
        ("struct_size", c.c_uint32),
        ("backend", c.c_int),
        ("device_index", c.c_int),
        ("device_name", c.c_char_p),
        ("cache_dir", c.c_char_p),
        ("log", LOG_FN),
        ("log_user", c.c_void_p),
        ("log_level", c.c_int),
        ("n_threads", c.c_uint32),
        ("vulkan_external", c.c_void_p),
        ("opencl_external", c.c_void_p),
        ("device_page_bytes", c.c_uint64),
        ("staging_bytes", c.c_uint64),
        ("host_malloc", c.c_void_p),  # allocator hooks (C function pointers); None: the C library's
        ("host_realloc", c.c_void_p),
        ("host_free", c.c_void_p),
        ("host_alloc_user", c.c_void_p),
    ]


class DeviceInfoC(c.Structure):
    _fields_ = [
        ("struct_size", c.c_uint32),
        ("backend", c.c_int),
        ("index", c.c_uint32),
        ("type", c.c_int),
        ("name", c.c_char * 128),
        ("driver", c.c_char * 128),
        ("subgroup_size", c.c_uint32),
        ("features", c.c_uint32),
        ("memory_bytes", c.c_uint64),
    ]


class CacheConfigC(c.Structure):
    _fields_ = [
        ("struct_size", c.c_uint32),
        ("n_layers", c.c_uint32),
        ("n_kv_heads", c.c_uint32),
        ("head_dim", c.c_uint32),
        ("k_bits", c.c_uint32),
        ("v_bits", c.c_uint32),
        ("group_size", c.c_uint32),
        ("window", c.c_uint32),
        ("n_patterns", c.c_uint32),
        ("bank_capacity", c.c_uint32),
        ("mode", c.c_int),
        ("memory_budget", c.c_uint64),
        ("kmeans_iters", c.c_uint32),
        ("kmeans_tol", c.c_float),
        ("seed", c.c_uint64),
        ("k_assign", c.c_uint32),  # pkv_k_assign: 0 minmax (the paper), 1 l2, 2 range, 3 none (CPU only)
        ("mining", c.c_uint32),  # pkv_mining: 0 at M tokens (default), 1 first append only (the paper)
        ("quantizer", c.c_uint32),  # pkv_quantizer: 0 min-max (the paper), 1 mse, 2 mse-k, 3 mse-v, 4 auto (default: mse-v for PATTERN, min-max for DIRECT)
        ("kmeans_sample", c.c_uint32),  # k-means over at most this many evenly strided tokens; 0 = all
    ]


class AttentionParamsC(c.Structure):
    _fields_ = [
        ("struct_size", c.c_uint32),
        ("seqs", c.POINTER(c.c_uint32)),
        ("n_seqs", c.c_uint32),
        ("layer", c.c_uint32),
        ("q_len", c.c_uint32),
        ("n_q_heads", c.c_uint32),
        ("scale", c.c_float),
        ("q_dtype", c.c_int),
        ("k_new", c.c_void_p),
        ("v_new", c.c_void_p),
        ("kv_new_dtype", c.c_int),
    ]


class AppendParamsC(c.Structure):
    _fields_ = [
        ("struct_size", c.c_uint32),
        ("seq", c.c_uint32),
        ("first_layer", c.c_uint32),
        ("n_layers", c.c_uint32),
        ("n_tokens", c.c_uint32),
        ("dtype", c.c_int),
    ]


class CacheStatsC(c.Structure):
    _fields_ = [("struct_size", c.c_uint32)] + [
        (name, c.c_uint64) for name in (
            "bytes_codes", "bytes_scales", "bytes_indices", "bytes_masks", "bytes_padding", "bytes_patterns",
            "bytes_window", "bytes_reserved", "bytes_budget", "bytes_free", "blocks_used", "blocks_shared",
            "tokens_stored", "tokens_compressed")
    ] + [("bits_per_element", c.c_double), ("n_seqs", c.c_uint32)]


# Every mirrored struct, by its C name (the ABI test compares each field's offset with the C compiler's).
STRUCTS = {
    "pkv_context_params": ContextParamsC,
    "pkv_device_info": DeviceInfoC,
    "pkv_cache_config": CacheConfigC,
    "pkv_attention_params": AttentionParamsC,
    "pkv_append_params": AppendParamsC,
    "pkv_cache_stats": CacheStatsC,
}
