"""PatternKV from Python: ctypes over libpatternkv and numpy arrays, nothing to compile.

    import numpy as np, patternkv as pkv
    with pkv.Context(backend="cpu") as ctx:
        cache = ctx.create_cache(n_layers=1, n_kv_heads=2, head_dim=64, k_bits=4, v_bits=4)
        seq = cache.new_sequence()
        seq.append(0, k, v)                  # [n_tokens, n_kv_heads, head_dim], float32 or float16
        out = seq.attention(0, q)            # q [q_len, n_q_heads, head_dim] -> out, float32

The library is found through $PATTERNKV_LIBRARY, else beside this package, else in the build/ folder
of the source tree, else as an installed libpatternkv.so (see load_library). docs/PYTHON.md has more."""
from ._lib import ENV_LIBRARY, load_library
from ._structs import Backend, DeviceType, DType, Feature, LogLevel, Mode, Status
from .api import (Cache, CacheConfig, CacheStats, Context, DeviceInfo, Sequence, f16_to_f32, f32_to_f16, last_error,
                  list_devices, status_string, version, version_number)
from .errors import (BackendUnavailableError, CorruptFileError, DeviceError, DTypeError, FileError,
                     InvalidArgumentError, InvalidConfigError, LayerRangeError, NonFiniteError, OutOfBudgetError,
                     OutOfDeviceMemoryError, OutOfHostMemoryError, PatternKVError, ShapeError, UnknownSequenceError,
                     UnsupportedError)

__all__ = [
    "ENV_LIBRARY", "load_library", "Backend", "DeviceType", "DType", "Feature", "LogLevel", "Mode", "Status",
    "Cache", "CacheConfig", "CacheStats", "Context", "DeviceInfo", "Sequence", "f16_to_f32", "f32_to_f16",
    "last_error", "list_devices", "status_string", "version", "version_number", "BackendUnavailableError",
    "CorruptFileError", "DeviceError", "DTypeError", "FileError", "InvalidArgumentError", "InvalidConfigError",
    "LayerRangeError", "NonFiniteError", "OutOfBudgetError", "OutOfDeviceMemoryError", "OutOfHostMemoryError",
    "PatternKVError", "ShapeError", "UnknownSequenceError", "UnsupportedError",
]
