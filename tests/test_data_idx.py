"""Tests for the IDX (MNIST-format) reader."""

from __future__ import annotations

import gzip
import re
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advnets.data.idx import load_idx_dataset, read_idx
from advnets.errors import DataError

TYPE_BYTES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(arr: np.ndarray, dtype=None) -> bytes:
    """Encode ``arr`` as IDX (independently of the reader under test)."""
    dt = np.dtype(dtype or arr.dtype)
    if dt.itemsize > 1:
        dt = dt.newbyteorder(">")
    header = bytes([0, 0, TYPE_BYTES[dt], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=dt).tobytes()


def write(path, data: bytes, *, gz: bool = False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "arr",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-128, -1, 0, 1, 127], dtype=np.int8),
        np.array([[-32768, 5], [7, 32767]], dtype=np.int16),
        np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32),
        np.array([[0.5, -1.25e-3], [np.inf, 3.0e38]], dtype=np.float32),
        np.array([1e-300, -2.5, np.pi], dtype=np.float64),
    ],
    ids=["u8", "i8", "i16", "i32", "f32", "f64"],
)
def test_round_trip_every_type(tmp_path, arr, gz):
    p = write(tmp_path / ("a.idx.gz" if gz else "a.idx"), idx_bytes(arr), gz=gz)
    got = read_idx(p)
    assert got.shape == arr.shape
    assert got.dtype == arr.dtype.newbyteorder("=")
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def test_gz_suffix_is_case_insensitive(tmp_path):
    arr = np.arange(6, dtype=np.uint8)
    p = write(tmp_path / "labels.GZ", idx_bytes(arr), gz=True)
    np.testing.assert_array_equal(read_idx(p), arr)


def test_wrong_magic(tmp_path):
    p = write(tmp_path / "x-idx1-ubyte", b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match=r"x-idx1-ubyte.*wrong magic"):
        read_idx(p)


def test_gzip_inside_non_gz_name(tmp_path):
    arr = np.arange(4, dtype=np.uint8)
    p = write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(arr), gz=True)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.*gzip.*\.gz"):
        read_idx(p)


def test_gz_name_without_gzip_content(tmp_path):
    p = write(tmp_path / "t.idx.gz", idx_bytes(np.arange(4, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"t\.idx\.gz.*not gzip"):
        read_idx(p)


@pytest.mark.parametrize("type_byte", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_unsupported_type_byte(tmp_path, type_byte):
    p = write(tmp_path / "t.idx", bytes([0, 0, type_byte, 1]) + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match=rf"t\.idx.*0x{type_byte:02X}"):
        read_idx(p)


def test_zero_dimensions(tmp_path):
    p = write(tmp_path / "t.idx", bytes([0, 0, 8, 0]))
    with pytest.raises(DataError, match="0 dimensions"):
        read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(120, 28, 0), (0, 28, 28), (5, 0, 3), (0,)])
def test_a_zero_dimension_is_refused_naming_the_file(tmp_path, gz, shape):
    """Issue 18: a header declaring e.g. 120 x 28 x 0 images is not an empty array but a corrupt file."""
    header = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    p = write(tmp_path / ("z-idx3-ubyte.gz" if gz else "z-idx3-ubyte"), header, gz=gz)
    dims = "x".join(map(str, shape))
    with pytest.raises(DataError, match=rf"z-idx3-ubyte.*{dims} array, with a zero dimension"):
        read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("cut", [0, 2, 4, 9, 20])
def test_truncated(tmp_path, gz, cut):
    data = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    p = write(tmp_path / ("t.idx.gz" if gz else "t.idx"), data[: len(data) - 1 - cut], gz=gz)
    with pytest.raises(DataError, match=r"t\.idx"):
        read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data_message(tmp_path, gz):
    data = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    p = write(tmp_path / ("t.idx.gz" if gz else "t.idx"), data[:-3], gz=gz)
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_trailing_bytes(tmp_path, gz):
    data = idx_bytes(np.arange(10, dtype=np.uint8)) + b"\x00\x01"
    p = write(tmp_path / ("t.idx.gz" if gz else "t.idx"), data, gz=gz)
    with pytest.raises(DataError, match="trailing"):
        read_idx(p)


def test_gzip_garbage_after_stream(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8))) + b"garbage!"
    p = write(tmp_path / "t.idx.gz", data)
    with pytest.raises(DataError, match=r"t\.idx\.gz"):
        read_idx(p)


def test_corrupt_gzip_crc(tmp_path):
    data = bytearray(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8))))
    data[-6] ^= 0xFF  # inside the CRC32 trailer
    p = write(tmp_path / "t.idx.gz", bytes(data))
    with pytest.raises(DataError, match=r"t\.idx\.gz"):
        read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("type_byte", [0x08, 0x0E])
def test_huge_header_claim_fails_fast(tmp_path, gz, type_byte):
    # 2^31 x 2^31 x 2^31 elements: any attempt to allocate would fail or hang.
    header = bytes([0, 0, type_byte, 3]) + struct.pack(">3I", 2**31, 2**31, 2**31)
    p = write(tmp_path / ("h.idx.gz" if gz else "h.idx"), header + b"\x00" * 64, gz=gz)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"h\.idx.*claims"):
        read_idx(p)
    assert time.perf_counter() - start < 1.0


def test_gzip_claim_within_ratio_but_missing_data(tmp_path):
    # Claims 1 MiB of data; the compressed file could hold that much but does not.
    header = bytes([0, 0, 8, 1]) + struct.pack(">I", 2**20)
    p = write(tmp_path / "c.idx.gz", header + b"\x00" * 100, gz=True)
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="nope"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="directory"):
        read_idx(tmp_path)


# --------------------------------------------------------------------------- dataset


def make_dataset(d, n_train=7, n_test=3, rows=4, cols=5, *, gz=False, dotted=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "t10k-labels": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    d.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        kind = "idx3-ubyte" if arr.ndim == 3 else "idx1-ubyte"
        name = f"{stem}{'.' if dotted else '-'}{kind}{'.gz' if gz else ''}"
        write(d / name, idx_bytes(arr), gz=gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dotted", [False, True])
def test_dataset_split_and_values(tmp_path, gz, dotted):
    arrays = make_dataset(tmp_path / "mnist", gz=gz, dotted=dotted)
    ds = load_idx_dataset(tmp_path / "mnist", valid_size=2)
    assert set(ds) == {"train", "valid", "test"}
    Xtr, ytr = ds["train"]
    Xva, yva = ds["valid"]
    Xte, yte = ds["test"]
    for X in (Xtr, Xva, Xte):
        assert X.dtype == np.float32 and X.ndim == 3 and X.shape[1:] == (4, 5)
        assert X.min() >= 0.0 and X.max() <= 1.0
    for y in (ytr, yva, yte):
        assert y.dtype == np.int64
    imgs = arrays["train-images"].astype(np.float32) / 255
    np.testing.assert_array_equal(Xtr, imgs[:5])
    np.testing.assert_array_equal(Xva, imgs[5:])
    np.testing.assert_array_equal(ytr, arrays["train-labels"][:5])
    np.testing.assert_array_equal(yva, arrays["train-labels"][5:])
    np.testing.assert_array_equal(Xte, arrays["t10k-images"].astype(np.float32) / 255)
    np.testing.assert_array_equal(yte, arrays["t10k-labels"])


def test_dataset_valid_size_zero(tmp_path):
    make_dataset(tmp_path)
    ds = load_idx_dataset(tmp_path, valid_size=0)
    assert ds["train"][0].shape[0] == 7
    assert ds["valid"][0].shape == (0, 4, 5) and ds["valid"][1].shape == (0,)


@pytest.mark.parametrize("bad", [-1, 7, 100, 2.5, True, "3"])
def test_dataset_bad_valid_size(tmp_path, bad):
    make_dataset(tmp_path)
    with pytest.raises(DataError, match="valid_size"):
        load_idx_dataset(tmp_path, valid_size=bad)


def test_dataset_missing_files_named(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.*advnets data fetch mnist"):
        load_idx_dataset(tmp_path)


def test_dataset_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"nowhere.*advnets data fetch fashion-mnist"):
        load_idx_dataset(tmp_path / "nowhere", dataset="fashion-mnist")


def test_dataset_labels_given_as_images(tmp_path):
    arrays = make_dataset(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(arrays["train-labels"]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*3-D.*labels file"):
        load_idx_dataset(tmp_path, valid_size=1)


def test_dataset_images_given_as_labels(tmp_path):
    arrays = make_dataset(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(arrays["t10k-images"]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.*1-D.*images file"):
        load_idx_dataset(tmp_path, valid_size=1)


def test_dataset_count_mismatch(tmp_path):
    make_dataset(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(6, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"7 images.*6 labels"):
        load_idx_dataset(tmp_path, valid_size=1)


@pytest.mark.parametrize("gz", [False, True])
def test_dataset_with_zero_width_training_images_names_that_file(tmp_path, gz):
    """Issue 18's report: 120 x 28 x 0 training images used to load, and the error named the test images."""
    make_dataset(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    write(tmp_path / name, bytes([0, 0, 8, 3]) + struct.pack(">3I", 120, 28, 0), gz=gz)
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(tmp_path / name))}: IDX header declares a 120x28x0 array"
    ) as err:
        load_idx_dataset(tmp_path, valid_size=1)
    assert "t10k" not in str(err.value)


def test_dataset_image_size_mismatch(tmp_path):
    make_dataset(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8)))
    with pytest.raises(DataError, match="same size"):
        load_idx_dataset(tmp_path, valid_size=1)


def test_dataset_non_byte_images_and_float_labels(tmp_path):
    arrays = make_dataset(tmp_path)
    write(
        tmp_path / "train-images-idx3-ubyte",
        idx_bytes(arrays["train-images"].astype(np.float32)),
    )
    with pytest.raises(DataError, match="unsigned-byte"):
        load_idx_dataset(tmp_path, valid_size=1)
    make_dataset(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(7, dtype=np.float64)))
    with pytest.raises(DataError, match="integer labels"):
        load_idx_dataset(tmp_path, valid_size=1)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.full(7, -1, dtype=np.int8)))
    with pytest.raises(DataError, match="non-negative"):
        load_idx_dataset(tmp_path, valid_size=1)


# --------------------------------------------------------------------------- properties

_FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check_result(arr, data: bytes):
    """A successful read must match the (decompressed) bytes' own header exactly."""
    assert isinstance(arr, np.ndarray)
    assert 0 not in arr.shape  # a zero dimension is refused, never read as an empty array
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    assert arr.shape == dims
    assert 4 + 4 * ndim + arr.nbytes == len(data)


@_FUZZ
@given(data=st.binary(max_size=200), gz_name=st.booleans())
def test_random_bytes_give_array_or_data_error(tmp_path, data, gz_name):
    p = write(tmp_path / ("f.gz" if gz_name else "f"), data)
    try:
        arr = read_idx(p)
    except DataError:
        return
    _check_result(arr, gzip.decompress(data) if gz_name else data)


@st.composite
def mutated_idx(draw):
    dtype = draw(st.sampled_from(list(TYPE_BYTES)))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    arr = np.zeros(shape, dtype=dtype.newbyteorder("="))
    data = bytearray(idx_bytes(arr, dtype))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data += draw(st.binary(max_size=8))
    return bytes(data)


@_FUZZ
@given(data=mutated_idx(), gz=st.booleans(), corrupt_gz=st.integers(0, 40))
def test_mutated_files_give_array_or_data_error(tmp_path, data, gz, corrupt_gz):
    raw = data
    if gz:
        comp = bytearray(gzip.compress(data))
        if corrupt_gz < len(comp) and corrupt_gz % 3 == 0:
            comp[corrupt_gz] ^= 0x5A
        raw = bytes(comp)
    p = write(tmp_path / ("f.idx.gz" if gz else "f.idx"), raw)
    try:
        arr = read_idx(p)
    except DataError:
        return
    _check_result(arr, gzip.decompress(raw) if gz else raw)
