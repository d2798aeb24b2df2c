"""Finding and loading libpatternkv, and the C prototypes (include/patternkv.h)."""
import ctypes
import ctypes.util
import os
import threading

from . import _structs as S

ENV_LIBRARY = "PATTERNKV_LIBRARY"

_lock = threading.Lock()
_lib = None


def _candidates():
    """Where the shared library is looked for, in order."""
    env = os.environ.get(ENV_LIBRARY)
    if env:
        return [env]  # asked for explicitly: nothing else is tried
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))  # the source tree: python/patternkv -> repository root
    found = [os.path.join(here, "libpatternkv.so")]  # a copy installed beside the module
    found.append(os.path.join(root, "build", "libpatternkv.so"))
    name = ctypes.util.find_library("patternkv")  # ldconfig's cache (an installed copy)
    found += [name] if name else []
    found.append("libpatternkv.so.0")  # the dynamic linker's search path (LD_LIBRARY_PATH, ...)
    return found


def load_library(path=None):
    """Loads libpatternkv (once per process) and returns the ctypes.CDLL.

    path: the shared library to load. Without it: $PATTERNKV_LIBRARY, else libpatternkv.so beside this
    module, else build/libpatternkv.so of the source tree this module sits in, else an installed copy
    (ldconfig, LD_LIBRARY_PATH). Raises OSError naming every place tried."""
    global _lib
    with _lock:
        if _lib is not None:
            if path is not None and os.path.abspath(path) != getattr(_lib, "_pkv_path", None):
                raise OSError(f"patternkv: {_lib._pkv_path} is already loaded; load_library({path!r}) comes too late")
            return _lib
        tried = []
        for cand in ([path] if path is not None else _candidates()):
            if os.sep in cand and not os.path.exists(cand):
                tried.append(f"{cand} (no such file)")
                continue
            try:
                lib = ctypes.CDLL(cand)
            except OSError as e:
                tried.append(f"{cand} ({e})")
                continue
            lib._pkv_path = os.path.abspath(cand) if os.sep in cand else cand
            _declare(lib)
            _lib = lib
            return lib
        raise OSError("patternkv: cannot load libpatternkv.so; tried: " + "; ".join(tried) +
                      f". Build the library (cmake --build build) or set {ENV_LIBRARY}=/path/to/libpatternkv.so")


def lib():
    return _lib if _lib is not None else load_library()


def _declare(lib):
    c = ctypes
    u32, i32, sz, vp, cp = c.c_uint32, c.c_int, c.c_size_t, c.c_void_p, c.c_char_p
    P = c.POINTER
    protos = {
        "pkv_status_string": (cp, [i32]),
        "pkv_last_error": (cp, []),
        "pkv_version_number": (c.c_uint, []),
        "pkv_version_string": (cp, []),
        "pkv_backend_name": (cp, [i32]),
        "pkv_backend_from_name": (i32, [cp, P(i32)]),
        "pkv_mode_name": (cp, [i32]),
        "pkv_list_devices": (i32, [P(S.ContextParamsC), vp, sz, P(sz)]),
        "pkv_context_params_init": (i32, [P(S.ContextParamsC), sz]),
        "pkv_context_create": (i32, [P(S.ContextParamsC), P(vp)]),
        "pkv_context_free": (i32, [vp]),
        "pkv_context_device": (i32, [vp, P(S.DeviceInfoC), cp, sz]),
        "pkv_cache_config_init": (i32, [P(S.CacheConfigC), sz]),
        "pkv_cache_config_init_paper": (i32, [P(S.CacheConfigC), sz]),
        "pkv_cache_config_resolve": (i32, [P(S.CacheConfigC)]),
        "pkv_cache_create": (i32, [vp, P(S.CacheConfigC), P(vp)]),
        "pkv_cache_free": (i32, [vp]),
        "pkv_cache_get_config": (i32, [vp, P(S.CacheConfigC)]),
        "pkv_seq_create": (i32, [vp, P(u32)]),
        "pkv_seq_free": (i32, [vp, u32]),
        "pkv_seq_fork": (i32, [vp, u32, P(u32)]),
        "pkv_seq_length": (i32, [vp, u32, u32, P(u32)]),
        "pkv_f32_to_f16_array": (i32, [vp, vp, sz]),
        "pkv_f16_to_f32_array": (i32, [vp, vp, sz]),
        "pkv_append": (i32, [vp, u32, u32, u32, vp, vp, i32]),
        "pkv_append_params_init": (i32, [P(S.AppendParamsC), sz]),
        "pkv_append_layers": (i32, [vp, P(S.AppendParamsC), vp, vp]),
        "pkv_attention_params_init": (i32, [P(S.AttentionParamsC), sz]),
        "pkv_attention": (i32, [vp, P(S.AttentionParamsC), vp, vp]),
        "pkv_read_kv": (i32, [vp, u32, u32, vp, vp]),
        "pkv_measure_read_bandwidth": (i32, [vp, c.c_uint64, P(c.c_double)]),
        "pkv_last_op_time": (i32, [vp, P(c.c_double)]),
        "pkv_cache_stats_get": (i32, [vp, P(S.CacheStatsC)]),
        "pkv_cache_save": (i32, [vp, cp]),
        "pkv_cache_load": (i32, [vp, cp, P(vp)]),
    }
    for name, (res, args) in protos.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
