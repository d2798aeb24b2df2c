"""The Python module (python/patternkv) on the CPU backend: attention against a numpy fp64 reference,
sequences, fork, save/load, stats, devices, the ctypes mirrors against the C compiler's layout, and
bad input refused with clear errors before it reaches C.

Run by ctest (label python) with PATTERNKV_LIBRARY, PYTHONPATH and PKV_ABI_DUMP set; by hand, after a
build in build/:
    /usr/bin/python3 tests/python/test_patternkv.py
PKV_TEST_BACKEND picks another backend (default cpu)."""
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import numpy as np
except ImportError:  # Debian: apt-get install python3-numpy
    print(f"{sys.executable} has no numpy (Debian: apt-get install python3-numpy)")
    sys.exit(1 if os.environ.get("CI") == "true" else 77)  # 77: ctest's SKIP_RETURN_CODE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
import patternkv as pkv  # noqa: E402

BACKEND = os.environ.get("PKV_TEST_BACKEND", "cpu")
H, D, NQ, G = 2, 64, 8, 32  # kv heads, head_dim, query heads (GQA 4), group size


def context(**kw):
    return pkv.Context(backend=BACKEND, n_threads=2, **kw)


def reference(K, V, q, scale=None):
    """fp64 attention of one sequence: K, V [T, H, d]; q [q_len, n_q_heads, d] -> [q_len, n_q_heads, d].
    Query i sees tokens 0 .. T - q_len + i; query head h reads kv head h // (n_q_heads / H)."""
    K, V, q = (np.asarray(x, dtype=np.float64) for x in (K, V, q))
    T, n_kv, d = K.shape
    q_len, nq, _ = q.shape
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    out = np.empty((q_len, nq, d))
    for i in range(q_len):
        n = T - q_len + i + 1
        for h in range(nq):
            kv = h // (nq // n_kv)
            logits = K[:n, kv] @ q[i, h] * scale
            p = np.exp(logits - logits.max())
            out[i, h] = (p / p.sum()) @ V[:n, kv]
    return out


def attention_bound(ctx):
    """docs/NUMERICS.md's bound for a quantized mode against fp64 over the stored cache: 1e-4, and
    1e-3 on the CPU backend's avx512vnni level (its products in int16)."""
    d = ctx.device
    return 1e-3 if d.backend == pkv.Backend.CPU and "avx512vnni" in d.name else 1e-4


def rel_err(out, ref):
    """The largest relative error ||o - ref|| / ||ref|| over the rows (query position, head)."""
    out = np.asarray(out, dtype=np.float64).reshape(-1, ref.shape[-1])
    ref = ref.reshape(-1, ref.shape[-1])
    return float(np.max(np.linalg.norm(out - ref, axis=1) / np.linalg.norm(ref, axis=1)))


def kv_data(rng, n, dtype=np.float32):
    """Keys around a few centres (pattern-like), values plain normal: [n, H, D] each."""
    centres = rng.standard_normal((4, H, D)) * 2.0
    k = centres[rng.integers(0, 4, n)] + 0.5 * rng.standard_normal((n, H, D))
    v = rng.standard_normal((n, H, D))
    return k.astype(dtype), v.astype(dtype)


class TestAbi(unittest.TestCase):
    """The ctypes mirrors against the C compiler's sizes, offsets and enum values (tests/python/abi_dump.c)."""

    def test_layout_and_enums(self):
        exe = os.environ.get("PKV_ABI_DUMP") or os.path.join(ROOT, "build", "tests", "pkv_abi_dump")
        if not os.path.exists(exe):
            self.skipTest(f"{exe} not found (ctest sets PKV_ABI_DUMP)")
        lines = subprocess.run([exe], check=True, capture_output=True, text=True).stdout.split("\n")
        c_values = {name: int(v) for name, v in (ln.split() for ln in lines if ln)}
        from patternkv import _structs
        checked = 0
        for cname, struct in _structs.STRUCTS.items():
            self.assertEqual(pkv_sizeof(struct), c_values[cname], f"sizeof({cname})")
            for field, _ in struct._fields_:
                self.assertEqual(getattr(struct, field).offset, c_values[f"{cname}.{field}"], f"{cname}.{field}")
                checked += 1
        prefixes = {pkv.Status: ("PKV_", "PKV_ERR_"), pkv.LogLevel: ("PKV_LOG_",), pkv.Backend: ("PKV_BACKEND_",),
                    pkv.DeviceType: ("PKV_DEVICE_",), pkv.Feature: ("PKV_FEATURE_",), pkv.Mode: ("PKV_MODE_",),
                    pkv.DType: ("PKV_",)}
        for kind, pre in prefixes.items():
            for member in kind:
                cname = next(p + member.name for p in pre if p + member.name in c_values)
                self.assertEqual(int(member), c_values[cname], cname)
                checked += 1
        self.assertEqual(len(pkv.Status), c_values["PKV_STATUS_COUNT"])
        self.assertEqual(len(pkv.Backend), c_values["PKV_BACKEND_COUNT"])
        self.assertGreater(checked, 70)

    def test_init_uses_own_size(self):
        cfg = pkv.CacheConfig()
        self.assertEqual(cfg._c.struct_size, pkv_sizeof(type(cfg._c)))
        self.assertEqual((cfg.k_bits, cfg.v_bits, cfg.group_size, cfg.n_patterns, cfg.bank_capacity, cfg.mode),
                         (2, 2, 0, 24, 0, pkv.Mode.PATTERN))
        r = cfg.resolved()
        self.assertEqual((r.group_size, r.bank_capacity, r.quantizer), (64, 24, 1))  # mse
        self.assertEqual(pkv.CacheConfig(mode="direct").resolved().group_size, 128)
        p = pkv.CacheConfig.paper(k_bits=4)
        self.assertEqual((p.k_bits, p.group_size, p.n_patterns, p.bank_capacity, p.quantizer), (4, 128, 32, 256, 0))


def pkv_sizeof(struct):
    import ctypes
    return ctypes.sizeof(struct)


class TestBasics(unittest.TestCase):
    def test_version_matches_header(self):
        with open(os.path.join(ROOT, "include", "patternkv.h")) as f:
            text = f.read()
        parts = [int(text.split(f"#define PKV_VERSION_{p} ")[1].split()[0]) for p in ("MAJOR", "MINOR", "PATCH")]
        self.assertEqual(pkv.version(), "%d.%d.%d" % tuple(parts))
        self.assertEqual(pkv.version_number(), parts[0] * 10000 + parts[1] * 100 + parts[2])

    def test_devices_and_log(self):
        devices = pkv.list_devices()
        self.assertTrue(any(d.backend == pkv.Backend.CPU and d.name.startswith("CPU reference") for d in devices))
        messages = []
        with context(log=lambda level, msg: messages.append((level, msg)), log_level="info") as ctx:
            self.assertEqual(ctx.device.backend, pkv.Backend[BACKEND.upper()])
            why = ctx.why
            self.assertIn(f"{BACKEND} requested", why)
        self.assertIn((pkv.LogLevel.INFO, why), messages)

    def test_measure(self):
        with context() as ctx:
            self.assertGreater(ctx.measure_read_bandwidth(1 << 20), 0.0)
            cache = ctx.create_cache(n_kv_heads=H, head_dim=D, group_size=G)
            seq = cache.new_sequence()
            seq.append(0, *kv_data(np.random.default_rng(1), 40))
            seq.attention(0, np.ones((1, NQ, D), np.float32))
            self.assertGreaterEqual(ctx.last_op_time(), 0.0)

    def test_f16_conversion(self):
        x = np.array([0.0, -1.5, 1e-3, 3.14159, 65504.0, 1e6, -1e6], np.float32)
        h = pkv.f32_to_f16(x)
        self.assertEqual(h.dtype, np.float16)
        np.testing.assert_array_equal(h[:5], x[:5].astype(np.float16))
        np.testing.assert_array_equal(h[5:], np.array([65504.0, -65504.0], np.float16))  # saturates, never Inf
        np.testing.assert_array_equal(pkv.f16_to_f32(h), h.astype(np.float32))

    def test_library_not_found(self):
        path = os.pathsep.join([os.path.join(ROOT, "python")] + os.environ.get("PYTHONPATH", "").split(os.pathsep))
        env = dict(os.environ, PATTERNKV_LIBRARY="/nonexistent/libpatternkv.so", PYTHONPATH=path)
        r = subprocess.run([sys.executable, "-c", "import patternkv; patternkv.version()"], env=env,
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/nonexistent/libpatternkv.so (no such file)", r.stderr)
        self.assertIn("PATTERNKV_LIBRARY", r.stderr)


class TestAttention(unittest.TestCase):
    """pkv_attention through the module against fp64 attention over the cache's own dequantized K/V
    (read_kv): < 1e-4 for the quantized modes (1e-3 on the CPU's avx512vnni level); FP16 mode against the
    original data: < 1e-3."""

    def run_model(self, mode, bits, dtype=np.float32, q_dtype=np.float32, tol=None, against_input=False):
        rng = np.random.default_rng(bits * 10 + int(mode if isinstance(mode, pkv.Mode) else pkv.Mode[mode.upper()]))
        with context() as ctx:
            cache = ctx.create_cache(n_layers=2, n_kv_heads=H, head_dim=D, k_bits=bits, v_bits=bits, group_size=G,
                                     window=2 * G, mode=mode)
            seqs = [cache.new_sequence(), cache.new_sequence()]
            data = {}
            for s, n in zip(seqs, (150, 70)):  # prefill: mines the banks (>= 32 tokens), fills blocks and window
                for layer in range(2):
                    k, v = kv_data(rng, n, dtype)
                    s.append(layer, k, v)
                    data[s.id, layer] = [k, v]
            worst = 0.0
            for step in range(70):  # decode, flushing windows on the way
                for s in seqs:
                    k, v = kv_data(rng, 1, dtype)
                    s.append(1, k, v)
                    data[s.id, 1][0] = np.concatenate([data[s.id, 1][0], k])
                    data[s.id, 1][1] = np.concatenate([data[s.id, 1][1], v])
                if step % 10 == 9 or step == 69:
                    q_len = 3 if step == 69 else 1
                    q = (0.5 * rng.standard_normal((2, q_len, NQ, D))).astype(q_dtype)
                    scale = None if step % 20 else 0.1
                    out = cache.attention(seqs, 1, q, scale=scale)
                    self.assertEqual((out.shape, out.dtype), (q.shape, np.float32))
                    for i, s in enumerate(seqs):
                        K, V = data[s.id, 1] if against_input else cache.read_kv(s, 1)
                        self.assertEqual(K.shape, (s.length(1), H, D))
                        worst = max(worst, rel_err(out[i], reference(K, V, q[i], scale)))
            bound = tol if tol is not None else attention_bound(ctx)
            self.assertLess(worst, bound, f"{mode} {bits}-bit: relative error {worst:.3g}")
            self.assertEqual([s.length(1) for s in seqs], [220, 140])
            self.assertEqual([s.length(0) for s in seqs], [150, 70])
            return cache.stats()

    def test_pattern_4bit(self):
        st = self.run_model("pattern", 4)
        self.assertGreater(st.bytes_patterns, 0)
        self.assertGreater(st.tokens_compressed, 0)

    def test_pattern_2bit_fp16_input(self):
        self.run_model("pattern", 2, dtype=np.float16, q_dtype=np.float16)

    def test_direct_4bit(self):
        st = self.run_model(pkv.Mode.DIRECT, 4)
        self.assertEqual((st.bytes_patterns, st.bytes_indices), (0, 0))

    def test_direct_3bit(self):
        self.run_model("direct", 3, q_dtype=np.float16)

    def test_fp16_mode_against_input(self):
        st = self.run_model("fp16", 8, tol=1e-3, against_input=True)
        self.assertAlmostEqual(st.bits_per_element, 16.0, delta=0.5)

    def test_fp16_mode_read_kv_is_rounded_input(self):
        with context() as ctx:
            cache = ctx.create_cache(n_kv_heads=H, head_dim=D, group_size=G, mode="fp16")
            seq = cache.new_sequence()
            k, v = kv_data(np.random.default_rng(3), 100)
            seq.append(0, k, v)
            K, V = seq.read_kv(0)
            np.testing.assert_array_equal(K, k.astype(np.float16).astype(np.float32))
            np.testing.assert_array_equal(V, v.astype(np.float16).astype(np.float32))

    def test_out_argument_and_single_sequence(self):
        with context() as ctx:
            cache = ctx.create_cache(n_kv_heads=H, head_dim=D, group_size=G, k_bits=4, v_bits=4)
            seq = cache.new_sequence()
            seq.append(0, *kv_data(np.random.default_rng(4), 90))
            q = np.random.default_rng(5).standard_normal((2, NQ, D)).astype(np.float32)
            out = np.zeros_like(q)
            self.assertIs(seq.attention(0, q, out=out).base, out)
            K, V = seq.read_kv(0)
            self.assertLess(rel_err(out, reference(K, V, q)), attention_bound(ctx))
            np.testing.assert_array_equal(cache.attention(seq, 0, q[None])[0], out)


class TestAppendLayers(unittest.TestCase):
    """append_layers (every layer in one call) equals append per layer; attention with the new token's
    own K/V (k_new, v_new) equals attention after appending it."""

    def test_append_layers_and_own_kv(self):
        rng = np.random.default_rng(11)
        L = 3
        with context() as ctx:
            caches = [ctx.create_cache(n_layers=L, n_kv_heads=H, head_dim=D, group_size=G, k_bits=2, v_bits=2)
                      for _ in range(2)]
            a, b = (c.new_sequence() for c in caches)
            prompt = [kv_data(rng, 100) for _ in range(L)]
            for layer in range(L):
                a.append(layer, *prompt[layer])
            b.append_layers(np.stack([x[0] for x in prompt]), np.stack([x[1] for x in prompt]))
            for step in range(5):
                tok = [kv_data(rng, 1) for _ in range(L)]
                q = rng.standard_normal((1, NQ, D)).astype(np.float32)
                for layer in range(L):
                    own = b.attention(layer, q, k_new=tok[layer][0], v_new=tok[layer][1])
                    a.append(layer, *tok[layer])
                    np.testing.assert_allclose(own, a.attention(layer, q), rtol=0, atol=1e-5)
                b.append_layers(np.stack([x[0] for x in tok]), np.stack([x[1] for x in tok]))
            for layer in range(L):
                self.assertEqual(a.length(layer), b.length(layer))
                for x, y in zip(a.read_kv(layer), b.read_kv(layer)):
                    np.testing.assert_array_equal(x, y)
            with self.assertRaises(pkv.ShapeError):
                b.append_layers(np.zeros((0, 1, H, D), np.float32), np.zeros((0, 1, H, D), np.float32))
            with self.assertRaises(pkv.LayerRangeError):
                b.append_layers(*(np.zeros((L, 1, H, D), np.float32),) * 2, first_layer=1)


class TestSequences(unittest.TestCase):
    def test_fork_save_load(self):
        rng = np.random.default_rng(7)
        with context() as ctx, tempfile.TemporaryDirectory() as tmp:
            cache = ctx.create_cache(n_layers=1, n_kv_heads=H, head_dim=D, group_size=G, k_bits=2, v_bits=4)
            parent = cache.new_sequence()
            parent.append(0, *kv_data(rng, 130))
            child = parent.fork()
            self.assertNotEqual(child, parent)
            st = cache.stats()
            self.assertEqual(st.n_seqs, 2)
            self.assertGreater(st.blocks_shared, 0)
            for a, b in zip(parent.read_kv(0), child.read_kv(0)):
                np.testing.assert_array_equal(a, b)
            q = rng.standard_normal((2, 1, NQ, D)).astype(np.float32)
            out = cache.attention([parent, child], 0, q[[0, 0]])
            np.testing.assert_array_equal(out[0], out[1])
            child.append(0, *kv_data(rng, 5))
            self.assertEqual((parent.length(0), child.length(0)), (130, 135))

            path = os.path.join(tmp, "session.pkv")
            cache.save(path)
            with context() as ctx2:
                loaded = ctx2.load_cache(path)
                self.assertEqual(loaded.config, cache.config)
                for s in (parent, child):
                    t = loaded.sequence(s.id)
                    for a, b in zip(s.read_kv(0), t.read_kv(0)):
                        np.testing.assert_array_equal(a, b)
                    np.testing.assert_array_equal(s.attention(0, q[0]), t.attention(0, q[0]))
                self.assertEqual(loaded.stats(), cache.stats())

            with open(path, "rb") as f:
                data = bytearray(f.read())
            data[len(data) // 2] ^= 0x40
            with open(path, "wb") as f:
                f.write(data)
            with self.assertRaises(pkv.CorruptFileError) as e:
                ctx.load_cache(path)
            self.assertIn("checksum", e.exception.message)
            with self.assertRaises(pkv.FileError):
                ctx.load_cache(os.path.join(tmp, "missing.pkv"))
            with self.assertRaises(pkv.FileError):
                cache.save(os.path.join(tmp, "no", "such", "dir.pkv"))

            child.free()
            with self.assertRaises(pkv.UnknownSequenceError) as e:
                child.length(0)
            self.assertEqual(e.exception.status, pkv.Status.UNKNOWN_SEQUENCE)
            self.assertIn(f"sequence {child.id} does not exist", str(e.exception))
            self.assertEqual(cache.stats().n_seqs, 1)

    def test_close(self):
        ctx = context()
        cache = ctx.create_cache(n_kv_heads=H, head_dim=D)
        seq = cache.new_sequence()
        ctx.close()  # closes the cache too
        with self.assertRaises(pkv.InvalidArgumentError) as e:
            seq.length(0)
        self.assertIn("closed", str(e.exception))
        ctx.close()


class TestErrors(unittest.TestCase):
    """Bad shapes and dtypes are refused in Python; the library's errors carry pkv_last_error()."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = context()
        cls.cache = cls.ctx.create_cache(n_layers=2, n_kv_heads=H, head_dim=D, group_size=G, memory_budget=1 << 20)
        cls.seq = cls.cache.new_sequence()
        cls.seq.append(0, *kv_data(np.random.default_rng(9), 40))

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()

    def raises(self, exc, fn, *args, match=None, **kw):
        with self.assertRaises(exc) as e:
            fn(*args, **kw)
        if match:
            self.assertIn(match, str(e.exception))
        return e.exception

    def test_bad_tokens(self):
        k, v = kv_data(np.random.default_rng(10), 4)
        app = self.seq.append
        e = self.raises(pkv.DTypeError, app, 0, k.astype(np.float64), v.astype(np.float64), match="dtype float64")
        self.assertIsInstance(e, TypeError)
        self.raises(TypeError, app, 0, k.tolist(), v, match="numpy.ndarray")
        self.raises(pkv.DTypeError, app, 0, k.astype(np.int32), v, match="dtype int32")
        self.raises(pkv.DTypeError, app, 0, k.astype(">f4"), v.astype(">f4"), match="native byte order")
        self.raises(pkv.DTypeError, app, 0, k, v.astype(np.float16), match="k is float32 but v is float16")
        e = self.raises(pkv.ShapeError, app, 0, k[:, :, :32], v[:, :, :32],
                        match="k has shape (4, 2, 32); expected (?, 2, 64)")
        self.assertIsInstance(e, ValueError)
        self.raises(pkv.ShapeError, app, 0, k[0], v[0], match="[n_tokens, n_kv_heads=2, head_dim=64]")
        self.raises(pkv.ShapeError, app, 0, k, v[:3], match="the same number of tokens")
        self.raises(pkv.InvalidArgumentError, app, 0, np.asfortranarray(k), v, match="C-contiguous")
        self.raises(pkv.InvalidArgumentError, app, -1, k, v, match="layer = -1")
        self.assertEqual(self.seq.length(0), 40)  # nothing was stored

    def test_bad_queries(self):
        att = self.cache.attention
        q = np.zeros((1, 1, NQ, D), np.float32)
        self.raises(pkv.ShapeError, att, [self.seq], 0, q[0], match="[n_seqs=1, q_len, n_q_heads")
        self.raises(pkv.ShapeError, att, [self.seq, self.seq], 0, q, match="expected (2, ?, ?, 64)")
        self.raises(pkv.ShapeError, att, [self.seq], 0, q[:, :, :3], match="a multiple of n_kv_heads=2")
        self.raises(pkv.ShapeError, att, [self.seq], 0, q[:, :0])
        self.raises(pkv.DTypeError, att, [self.seq], 0, q.astype(np.float64))
        self.raises(pkv.DTypeError, att, [self.seq], 0, q, out=np.zeros(q.shape, np.float16))
        self.raises(pkv.ShapeError, att, [self.seq], 0, q, out=np.zeros((1, 1, NQ, D - 1), np.float32))
        self.raises(pkv.InvalidArgumentError, att, [], 0, q, match="no sequences")
        other = self.ctx.create_cache(n_kv_heads=H, head_dim=D)
        self.raises(pkv.InvalidArgumentError, att, [other.new_sequence()], 0, q, match="belongs to another cache")
        other.close()
        self.raises(pkv.InvalidArgumentError, att, [self.seq], 0, q, scale=-1.0, match="scale")
        self.raises(pkv.ShapeError, self.seq.attention, 0, q[0, 0], match="[q_len, n_q_heads, head_dim=64]")

    def test_library_errors_carry_last_error(self):
        e = self.raises(pkv.InvalidConfigError, self.ctx.create_cache, head_dim=30)
        self.assertEqual(e.status, pkv.Status.INVALID_CONFIG)
        self.assertTrue(e.message)
        self.assertEqual(e.message, pkv.last_error())
        self.assertIn("head_dim", e.message)
        k, v = kv_data(np.random.default_rng(11), 3)
        self.raises(pkv.LayerRangeError, self.seq.append, 5, k, v, match="layer 5 out of range")
        k[1, 0, 3] = np.nan
        self.raises(pkv.NonFiniteError, self.seq.append, 0, k, v, match="k[")
        self.raises(pkv.NonFiniteError, self.seq.append, 0, v * 1e6, v, match="beyond fp16 range")
        q = np.zeros((1, 50, NQ, D), np.float32)
        self.raises(pkv.ShapeError, self.cache.attention, [self.seq], 0, q, match="fewer than q_len 50")
        self.raises(pkv.UnknownSequenceError, self.cache.attention, [12345], 0, q[:, :1], match="12345")
        big = kv_data(np.random.default_rng(12), 16384)
        self.raises(pkv.OutOfBudgetError, self.seq.append, 1, *big)
        self.assertEqual((self.seq.length(0), self.seq.length(1)), (40, 0))  # a failed call changes nothing
        self.assertIn("PKV_ERR_OUT_OF_BUDGET", pkv.status_string(pkv.Status.OUT_OF_BUDGET))

    def test_bad_parameters(self):
        self.raises(ValueError, pkv.Context, backend="tpu", match="not one of auto, cpu, vulkan, opencl")
        self.raises(AttributeError, pkv.CacheConfig, n_layer=2, match="no field 'n_layer'")
        self.raises(pkv.InvalidArgumentError, pkv.CacheConfig, n_layers=-1, match="n_layers = -1")
        self.raises(pkv.InvalidArgumentError, pkv.CacheConfig, head_dim=64.0, match="must be an integer")
        self.raises(ValueError, pkv.CacheConfig, mode="kivi", match="not one of pattern, direct, fp16")
        self.assertEqual(pkv.CacheConfig(mode="direct").mode, pkv.Mode.DIRECT)


if __name__ == "__main__":
    unittest.main(verbosity=2)
