"""Tests for the CIFAR-10 readers, the restricted unpickler and GCN."""

from __future__ import annotations

import builtins
import os
import pickle
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advnets.data.cifar import (
    RECORD_BYTES,
    GCNStats,
    global_contrast_normalize,
    inverse_global_contrast_normalize,
    load_cifar10,
    read_cifar_batch,
    read_cifar_binary_batch,
    read_cifar_pickle_batch,
)
from advnets.data.cifar_pickle import RestrictedUnpickler
from advnets.errors import DataError

# --------------------------------------------------------------------------- builders


def _bytes_op(b: bytes) -> bytes:
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b  # SHORT_BINSTRING
    return b"T" + struct.pack("<i", len(b)) + b  # BINSTRING


def _int_op(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    return b"J" + struct.pack("<i", v)


def _py2(obj) -> bytes:
    """Opcodes for ``obj`` as Python 2's cPickle (protocol 2) writes them."""
    if isinstance(obj, bytes):
        return _bytes_op(obj)
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return _int_op(obj)
    if isinstance(obj, list):
        return b"](" + b"".join(_py2(v) for v in obj) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, np.ndarray):
        shape = b"(" + b"".join(_int_op(d) for d in obj.shape) + b"t"
        code = obj.dtype.str[1:].encode()
        order = obj.dtype.str[0].encode()
        dtype = (
            b"cnumpy\ndtype\n" + _bytes_op(code) + b"K\x00K\x01\x87R"
            + b"(K\x03" + _bytes_op(order) + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        )  # fmt: skip
        return (
            b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
            + _bytes_op(b"b") + b"\x87R"
            + b"(K\x01" + shape + dtype + b"\x89" + _bytes_op(obj.tobytes()) + b"tb"
        )  # fmt: skip
    raise TypeError(type(obj))


def py2_pickle(obj) -> bytes:
    return b"\x80\x02" + _py2(obj) + b"."


def batch_dict(n=4, seed=0, *, label_offset=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in (rng.integers(0, 10, n) + label_offset) % 10]
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def binary_batch(data: np.ndarray, labels) -> bytes:
    rec = np.empty((data.shape[0], RECORD_BYTES), dtype=np.uint8)
    rec[:, 0] = labels
    rec[:, 1:] = data
    return rec.tobytes()


# --------------------------------------------------------------------------- reading


def test_py2_style_pickle_round_trip(tmp_path):
    batch = batch_dict(5)
    p = tmp_path / "data_batch_1"
    p.write_bytes(py2_pickle(batch))
    X, y = read_cifar_pickle_batch(p)
    assert X.dtype == np.uint8 and X.shape == (5, 3, 32, 32) and X.flags.writeable
    assert y.dtype == np.int64
    np.testing.assert_array_equal(X, batch[b"data"].reshape(5, 3, 32, 32))
    np.testing.assert_array_equal(y, batch[b"labels"])
    # channel layout: first 1024 values are the red plane, row-major
    np.testing.assert_array_equal(X[2, 0, 1, :], batch[b"data"][2, 32:64])
    np.testing.assert_array_equal(X[2, 2, 0, :], batch[b"data"][2, 2048:2080])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("str_keys", [False, True])
def test_python3_pickles(tmp_path, protocol, str_keys):
    batch = batch_dict(3, seed=protocol)
    if str_keys:
        batch = {k.decode(): v for k, v in batch.items()}
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps(batch, protocol=protocol))
    X, y = read_cifar_batch(p)
    np.testing.assert_array_equal(X.reshape(3, -1), batch["data" if str_keys else b"data"])
    np.testing.assert_array_equal(y, batch["labels" if str_keys else b"labels"])


def test_numpy_labels_and_big_endian_data(tmp_path):
    batch = {b"data": batch_dict(2)[b"data"], b"labels": np.array([3, 9], dtype=">i4")}
    p = tmp_path / "b"
    p.write_bytes(py2_pickle(batch))
    _, y = read_cifar_pickle_batch(p)
    assert y.tolist() == [3, 9] and y.dtype == np.int64
    # numpy scalars in the label list (pickled with numpy's scalar())
    p.write_bytes(pickle.dumps({b"data": batch[b"data"], b"labels": [np.int64(4), np.uint8(0)]}))
    _, y = read_cifar_pickle_batch(p)
    assert y.tolist() == [4, 0]


def test_binary_round_trip(tmp_path):
    batch = batch_dict(4, seed=3)
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(binary_batch(batch[b"data"], batch[b"labels"]))
    X, y = read_cifar_batch(p)
    np.testing.assert_array_equal(X, batch[b"data"].reshape(4, 3, 32, 32))
    np.testing.assert_array_equal(y, batch[b"labels"])
    assert X.dtype == np.uint8 and y.dtype == np.int64


@pytest.mark.parametrize("size", [0, 1, 3072, 3074, 2 * RECORD_BYTES - 1])
def test_binary_bad_size(tmp_path, size):
    p = tmp_path / "test_batch.bin"
    p.write_bytes(b"\x00" * size)
    with pytest.raises(DataError, match=rf"test_batch\.bin.*{size}.*multiple of 3073"):
        read_cifar_binary_batch(p)


def test_binary_label_out_of_range(tmp_path):
    batch = batch_dict(2)
    p = tmp_path / "b.bin"
    p.write_bytes(binary_batch(batch[b"data"], [1, 10]))
    with pytest.raises(DataError, match=r"b\.bin.*0\.\.9"):
        read_cifar_binary_batch(p)


def _layout(root, fmt, n=3):
    folder = root / ("cifar-10-batches-py" if fmt == "py" else "cifar-10-batches-bin")
    folder.mkdir(parents=True)
    batches = []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        b = batch_dict(n, seed=10 + i)
        batches.append(b)
        if fmt == "py":
            (folder / name).write_bytes(py2_pickle(b))
        else:
            (folder / f"{name}.bin").write_bytes(binary_batch(b[b"data"], b[b"labels"]))
    return folder, batches


@pytest.mark.parametrize("fmt", ["py", "bin"])
@pytest.mark.parametrize("point_at_batches", [False, True])
def test_load_cifar10_split(tmp_path, fmt, point_at_batches):
    folder, batches = _layout(tmp_path, fmt)
    ds = load_cifar10(folder if point_at_batches else tmp_path, valid_size=4)
    data = np.concatenate([b[b"data"] for b in batches[:5]]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([b[b"labels"] for b in batches[:5]])
    Xtr, ytr = ds["train"]
    Xva, yva = ds["valid"]
    Xte, yte = ds["test"]
    assert Xtr.shape == (11, 3, 32, 32) and Xva.shape == (4, 3, 32, 32)
    assert Xte.shape == (3, 3, 32, 32)
    for X in (Xtr, Xva, Xte):
        assert X.dtype == np.float32 and 0.0 <= X.min() and X.max() <= 1.0
    for y in (ytr, yva, yte):
        assert y.dtype == np.int64
    np.testing.assert_array_equal(Xtr, data[:11].astype(np.float32) / 255)
    np.testing.assert_array_equal(Xva, data[11:].astype(np.float32) / 255)
    np.testing.assert_array_equal(ytr, labels[:11])
    np.testing.assert_array_equal(yva, labels[11:])
    te = batches[5][b"data"].reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(Xte, te.astype(np.float32) / 255)
    np.testing.assert_array_equal(yte, batches[5][b"labels"])


def test_load_cifar10_missing_and_bad_valid_size(tmp_path):
    folder, _ = _layout(tmp_path, "py")
    with pytest.raises(DataError, match="valid_size"):
        load_cifar10(tmp_path, valid_size=15)
    with pytest.raises(DataError, match="valid_size"):
        load_cifar10(tmp_path, valid_size=-1)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(tmp_path, valid_size=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*no CIFAR-10 data"):
        load_cifar10(tmp_path / "empty", valid_size=1)
    with pytest.raises(DataError, match="not found"):
        load_cifar10(tmp_path / "absent")


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    "batch, match",
    [
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, r"shape \(2, 3071\)"),
        ({b"data": np.zeros(3072, np.uint8), b"labels": [0]}, r"shape \(3072,\)"),
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, r"0x3072 array, with a zero dimension \(dimension 1"),
        ({b"data": np.zeros((2, 0), np.uint8), b"labels": [0, 1]}, r"2x0 array, with a zero dimension \(dimension 2"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "dtype float32"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"0\.\.9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 0]}, r"0\.\.9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, b"x"]}, "non-integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": b"\x00\x01"}, "list of ints"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [2**70]}, "out-of-range"),
        ({b"labels": [0]}, "no 'data'"),
        ({b"data": np.zeros((1, 3072), np.uint8)}, "no 'labels'"),
        ({b"data": [1, 2], b"labels": [0]}, "uint8 array"),
        ([1, 2, 3], "type list"),
    ],
)
def test_malformed_batches(tmp_path, batch, match):
    p = tmp_path / "data_batch_1"
    if (
        isinstance(batch, dict)
        and isinstance(batch.get(b"labels"), list)
        and any(isinstance(v, int) and v > 2**31 for v in batch[b"labels"])
    ):
        p.write_bytes(pickle.dumps(batch, protocol=2))
    else:
        p.write_bytes(py2_pickle(batch))
    with pytest.raises(DataError, match=rf"data_batch_1.*{match}"):
        read_cifar_pickle_batch(p)


def test_float_labels_array_and_object_array(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": np.ones(1)}))
    with pytest.raises(DataError, match="1-D integer"):
        read_cifar_pickle_batch(p)
    obj = np.array([1, "x"], dtype=object)
    p.write_bytes(pickle.dumps({b"data": obj, b"labels": [0]}))
    with pytest.raises(DataError, match="plain numeric"):
        read_cifar_pickle_batch(p)


class _System:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (builtins.eval, (self.code,))


@pytest.mark.parametrize("kind", ["system", "eval", "nested", "py2-global"])
def test_malicious_pickle_never_runs(tmp_path, kind):
    sentinel = tmp_path / "pwned"
    touch = f"open({str(sentinel)!r}, 'w').close()"
    if kind == "system":
        payload = pickle.dumps(_System(f"touch '{sentinel}'"), protocol=2)
    elif kind == "eval":
        payload = pickle.dumps(_Eval(touch), protocol=4)
    elif kind == "nested":
        batch = batch_dict(2)
        batch[b"filenames"] = [_Eval(touch)]
        payload = pickle.dumps(batch, protocol=2)
    else:  # hand-written protocol-0 style: c__builtin__\neval\n(S'...'\ntR.
        payload = b"c__builtin__\neval\n(S" + repr(touch).encode() + b"\ntR."
    p = tmp_path / "data_batch_1"
    p.write_bytes(payload)
    with pytest.raises(DataError, match=r"data_batch_1.*refusing to load"):
        read_cifar_pickle_batch(p)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "payload, match",
    [
        # a million nested tuples used as a dict key: hashing it would overflow the C stack
        (b"\x80\x02}" + b")" + b"\x85" * 1_000_000 + b"K\x00s.", "dict key"),
        # memo index 2**32 - 1: the C unpickler would allocate 32 GiB for its memo table
        (b"\x80\x02K\x01r\xff\xff\xff\xff.", "type int"),
        # the same 1 MiB string encoded 200 times (200 MiB from a 1 MiB file)
        (
            b"\x80\x02c_codecs\nencode\nq\x00X"
            + struct.pack("<I", 2**20)
            + b"a" * 2**20
            + b"q\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03]("
            + b"h\x00h\x03R" * 200
            + b"e.",
            "more data than the file",
        ),
        # an ndarray that claims 2**40 elements but brings 3 bytes
        (
            b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b"
            b"\x87R(K\x01\x8a\x06\x00\x00\x00\x00\x00\x01\x85cnumpy\ndtype\nU\x02u1K\x00K\x01"
            b"\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x03abctb.",
            "need",
        ),
        # numpy.ndarray constructed directly (would allocate its shape)
        (b"\x80\x02cnumpy\nndarray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85\x81.", "TypeError"),
        # a byte array claiming 3.5 GiB (pickle._Unpickler would zero-fill it first)
        (b"\x80\x05\x96" + struct.pack("<Q", 0xE2000000) + b"abc.", "claims"),
        # object dtype
        (b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R.", "plain numeric"),
        # sets and extension opcodes are refused outright
        (b"\x80\x04\x8f.", "opcode"),
        (b"\x80\x02\x82\x01.", "opcode"),
        # BUILD on an allowed callable (would patch its attributes)
        (b"\x80\x02cnumpy\ndtype\n}b.", "unexpected state"),
        (b"", "EOFError"),
        (b"\x80\x02]q\x00(K\x01", "EOFError"),
    ],
)
def test_hostile_pickles_fail_cleanly(tmp_path, payload, match):
    p = tmp_path / "data_batch_9"
    p.write_bytes(payload)
    start = time.perf_counter()
    with pytest.raises(DataError, match=rf"data_batch_9.*{match}"):
        read_cifar_pickle_batch(p)
    # Not a speed test: a reader that is quadratic in the 1,000,000 opcodes above would take hours,
    # so a loose bound catches it without failing on a loaded machine (it took 6 s under load 5).
    assert time.perf_counter() - start < 60.0


def test_restricted_unpickler_loads_file_plain_values(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(pickle.dumps({"a": [1, 2.5, None, b"z"], "b": (1, "s")}, protocol=2))
    assert RestrictedUnpickler.loads_file(p) == {"a": [1, 2.5, None, b"z"], "b": (1, "s")}


def test_missing_pickle_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_cifar_pickle_batch(tmp_path / "nothing")
    with pytest.raises(DataError, match="directory"):
        read_cifar_pickle_batch(tmp_path)


# --------------------------------------------------------------------------- properties

_FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_or_data_error(p):
    try:
        X, y = read_cifar_pickle_batch(p)
    except DataError:
        return
    assert X.dtype == np.uint8 and X.ndim == 4 and X.shape[1:] == (3, 32, 32)
    assert y.dtype == np.int64 and y.shape == (X.shape[0],)
    assert y.min() >= 0 and y.max() <= 9


@_FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_unpickle_or_data_error(tmp_path, data):
    p = tmp_path / "r"
    p.write_bytes(b"\x80\x02" + data if data[:1] == b"x" else data)
    _valid_or_data_error(p)


_BASE = [py2_pickle(batch_dict(2, seed=1)), pickle.dumps(batch_dict(2, seed=2), protocol=5)]


@_FUZZ
@given(
    which=st.integers(0, len(_BASE) - 1),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
    head_bias=st.booleans(),
)
def test_mutated_pickles_unpickle_or_data_error(tmp_path, which, edits, cut, head_bias):
    data = bytearray(_BASE[which])
    for pos, value in edits:
        # bias towards the opcode-dense structure before and after the pixel bytes
        region = 200 if head_bias else len(data)
        i = pos % region if not head_bias or pos % 2 else len(data) - 1 - pos % region
        data[i] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    p = tmp_path / "m"
    p.write_bytes(bytes(data))
    _valid_or_data_error(p)


# --------------------------------------------------------------------------- GCN


def _pylearn2_gcn(X, scale=55.0, min_divisor=1e-8):
    """pylearn2.expr.preprocessing.global_contrast_normalize, use_std=False, sqrt_bias=0."""
    X = X.reshape(X.shape[0], -1).astype(np.float64)
    mean = X.mean(axis=1)
    X = X - mean[:, None]
    normalizers = np.sqrt((X**2).sum(axis=1)) / scale
    normalizers[normalizers < min_divisor] = 1.0
    return X / normalizers[:, None]


def test_gcn_matches_pylearn2_and_inverts():
    rng = np.random.default_rng(0)
    X = rng.random((5, 3, 4, 4)).astype(np.float32)
    X[3] = 0.25  # constant image: divisor 1, output zeros
    Xn, stats = global_contrast_normalize(X)
    assert isinstance(stats, GCNStats) and stats.scale == 55.0
    assert Xn.shape == X.shape and Xn.dtype == np.float32
    np.testing.assert_allclose(Xn.reshape(5, -1), _pylearn2_gcn(X), rtol=1e-5, atol=1e-5)
    norms = np.linalg.norm(Xn.reshape(5, -1).astype(np.float64), axis=1)
    np.testing.assert_allclose(norms[[0, 1, 2, 4]], 55.0, rtol=1e-5)
    assert np.all(Xn[3] == 0) and stats.divisor[3] == 1.0
    np.testing.assert_allclose(stats.mean, X.reshape(5, -1).mean(axis=1), rtol=1e-6)
    back = inverse_global_contrast_normalize(Xn, stats)
    np.testing.assert_allclose(back, X, atol=1e-5)
    # scale invariance: [0, 255] input gives the same result
    Xn255, _ = global_contrast_normalize(X * 255)
    np.testing.assert_allclose(Xn255[[0, 1, 2, 4]], Xn[[0, 1, 2, 4]], rtol=1e-4, atol=1e-4)


def test_gcn_display_rescale_without_stats():
    rng = np.random.default_rng(1)
    Xn = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)
    Xn[2] = 7.0
    out = inverse_global_contrast_normalize(Xn)
    assert out.shape == Xn.shape and out.dtype == np.float32
    flat = out.reshape(4, -1)
    np.testing.assert_allclose(flat[[0, 1, 3]].min(axis=1), 0.0)
    np.testing.assert_allclose(flat[[0, 1, 3]].max(axis=1), 1.0)
    assert np.all(flat[2] == 0.5)


def test_gcn_bad_input():
    with pytest.raises(DataError):
        global_contrast_normalize(np.zeros(5))
    with pytest.raises(DataError):
        global_contrast_normalize(np.zeros((2, 3)), scale=0)
    with pytest.raises(DataError):
        global_contrast_normalize(np.full((2, 3), np.nan))
    Xn, stats = global_contrast_normalize(np.ones((2, 3)))
    with pytest.raises(DataError, match="stats are for 2 images"):
        inverse_global_contrast_normalize(np.zeros((3, 3)), stats)
