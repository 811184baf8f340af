"""Tests for the Toronto Face Database reader."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advnets.data.tfd import TFD_SPLITS, TFDFolds, load_tfd, load_tfd_folds, read_mat_arrays
from advnets.errors import DataError


def tfd_arrays(n=8, size=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    folds = rng.integers(0, 4, (n, 5)).astype(np.float64)  # MATLAB's default class
    folds[:4, 0] = [0, 1, 2, 3]  # every split is non-empty in fold 0
    return {
        "images": images,
        "folds": folds,
        "labs_ex": rng.integers(-1, 7, (n, 1)).astype(np.float64),
        "labs_id": rng.integers(1, 100, (n, 1)).astype(np.float64),
    }


def save(path, arrays, compress=False):
    scipy.io.savemat(path, arrays, do_compression=compress)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_every_split_of_every_fold(tmp_path, compress):
    arrays = tfd_arrays()
    p = save(tmp_path / "TFD_48x48.mat", arrays, compress)
    expected = arrays["images"].astype(np.float32) / 255
    for fold in range(5):
        for split, code in TFD_SPLITS.items():
            got = load_tfd(p, fold=fold, split=split)
            assert got.dtype == np.float32 and got.ndim == 3
            np.testing.assert_array_equal(got, expected[arrays["folds"][:, fold] == code])
    assert load_tfd(p).shape == (int((arrays["folds"][:, 0] == 0).sum()), 6, 6)


def test_load_all_folds(tmp_path):
    arrays = tfd_arrays(n=10, size=4, seed=1)
    p = save(tmp_path / "t.mat", arrays, compress=True)
    allf = load_tfd_folds(p)
    assert isinstance(allf, TFDFolds) and len(allf.folds) == 5
    np.testing.assert_array_equal(allf.images, arrays["images"].astype(np.float32) / 255)
    for k, splits in enumerate(allf.folds):
        assert set(splits) == set(TFD_SPLITS)
        idx = np.sort(np.concatenate(list(splits.values())))
        np.testing.assert_array_equal(idx, np.arange(10))  # each fold partitions the images
        for name in TFD_SPLITS:
            assert splits[name].dtype == np.int64
            np.testing.assert_array_equal(allf.split(k, name), load_tfd(p, fold=k, split=name))


def test_mat_reader_matches_scipy(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {
        "a": rng.random((3, 4, 2)),
        "b": rng.integers(-5, 5, (2, 7)).astype(np.int16),
        "c": np.array([[1, 2]], dtype=np.uint8),  # small data element (4 bytes or fewer)
        "skip_me": np.array(["text"], dtype=object),
        "e": np.zeros((0, 3), dtype=np.float32),
    }
    for compress in (False, True):
        p = save(tmp_path / f"m{compress}.mat", arrays, compress)
        ref = scipy.io.loadmat(p)
        got = read_mat_arrays(p, {"a", "b", "c", "e", "absent"})
        assert set(got) == {"a", "b", "c", "e"}
        for k, v in got.items():
            assert v.dtype == ref[k].dtype and v.shape == ref[k].shape
            np.testing.assert_array_equal(v, ref[k])


@pytest.mark.parametrize("missing", ["images", "folds"])
def test_missing_variable(tmp_path, missing):
    arrays = tfd_arrays()
    del arrays[missing]
    p = save(tmp_path / "t.mat", arrays)
    with pytest.raises(DataError, match=rf"t\.mat.*missing variable.*{missing}"):
        load_tfd(p)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"images": np.zeros((8, 36), np.uint8)}, r"'images' has shape \(8, 36\)"),
        ({"images": np.zeros((0, 6, 6), np.uint8)}, r"variable 'images' declares a 0x6x6 array, with a zero dimension"),
        ({"images": np.zeros((8, 6, 0), np.uint8)}, r"variable 'images' declares a 8x6x0 array, with a zero dimension"),
        ({"folds": np.zeros((8, 0))}, r"variable 'folds' declares a 8x0 array, with a zero dimension"),
        ({"images": np.zeros((8, 6, 6), np.float64)}, "dtype float64"),
        ({"images": np.full((8, 6, 6), 300, np.int16)}, "outside 0..255"),
        ({"folds": np.zeros((7, 5))}, r"'folds' has shape \(7, 5\)"),
        ({"folds": np.zeros(8)}, r"'folds' has shape"),
        ({"folds": np.full((8, 5), 4.0)}, "values other than"),
        ({"folds": np.full((8, 5), 0.5)}, "values other than"),
        ({"images": np.array([["x"] * 3], dtype=object)}, "cell array"),
        ({"images": np.zeros((8, 6, 6), np.complex128)}, "complex"),
    ],
)
def test_wrong_shapes_and_types(tmp_path, change, match):
    arrays = tfd_arrays()
    arrays.update(change)
    p = save(tmp_path / "t.mat", arrays)
    with pytest.raises(DataError, match=rf"t\.mat.*{match}"):
        load_tfd(p)


def test_int16_images_in_range_are_accepted(tmp_path):
    arrays = tfd_arrays()
    arrays["images"] = arrays["images"].astype(np.int16)
    p = save(tmp_path / "t.mat", arrays)
    expected = arrays["images"][arrays["folds"][:, 0] == 1].astype(np.float32) / 255
    np.testing.assert_array_equal(load_tfd(p, split="train"), expected)


@pytest.mark.parametrize("fold", [-1, 5, 1.0, True])
def test_fold_out_of_range(tmp_path, fold):
    p = save(tmp_path / "t.mat", tfd_arrays())
    with pytest.raises(DataError, match="fold"):
        load_tfd(p, fold=fold)


@pytest.mark.parametrize("split", ["training", "", None])
def test_unknown_split(tmp_path, split):
    p = save(tmp_path / "t.mat", tfd_arrays())
    with pytest.raises(DataError, match="unknown split"):
        load_tfd(p, split=split)


def _fake_v73(path, *, with_text=True):
    header = bytearray(512)
    if with_text:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
        header[: len(text)] = text
        header[124:128] = b"\x00\x02IM"
    path.write_bytes(bytes(header) + b"\x89HDF\r\n\x1a\n" + b"\x00" * 200)
    return path


@pytest.mark.parametrize("with_text", [True, False])
def test_v73_hdf5_file(tmp_path, with_text):
    p = _fake_v73(tmp_path / "TFD_48x48.mat", with_text=with_text)
    with pytest.raises(DataError, match=r"TFD_48x48\.mat.*v7\.3.*HDF5.*-v7"):
        load_tfd(p)


def test_bare_hdf5_file(tmp_path):
    p = tmp_path / "t.mat"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 600)
    with pytest.raises(DataError, match="v7.3"):
        load_tfd(p)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a MATLAB v5/v7"),
        (b"hello world" * 20, "not a MATLAB v5/v7"),
        (b"\x00" * 200, "not a MATLAB v5/v7"),  # also what a v4 file looks like
    ],
)
def test_not_a_mat_file(tmp_path, content, match):
    p = tmp_path / "t.mat"
    p.write_bytes(content)
    with pytest.raises(DataError, match=rf"t\.mat.*{match}"):
        load_tfd(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="absent.mat"):
        load_tfd(tmp_path / "absent.mat")


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_file(tmp_path, compress):
    p = save(tmp_path / "t.mat", tfd_arrays(), compress)
    data = p.read_bytes()
    for cut in (130, len(data) // 2, len(data) - 3):
        p.write_bytes(data[:cut])
        with pytest.raises(DataError, match=r"t\.mat"):
            load_tfd(p)


def test_huge_claimed_element_fails_fast(tmp_path):
    p = save(tmp_path / "t.mat", tfd_arrays())
    data = bytearray(p.read_bytes())
    data[132:136] = (2**31 - 8).to_bytes(4, "little")  # first element's byte count
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="claims"):
        load_tfd(p)


def test_complex_flag_without_imaginary_part(tmp_path):
    # This exact corruption makes scipy.io.loadmat crash the interpreter.
    arrays = {"images": np.zeros((2, 3, 3), np.uint8), "folds": np.zeros((2, 5))}
    p = save(tmp_path / "t.mat", arrays)
    data = bytearray(p.read_bytes())
    assert data[144] == 9  # class uint8 in the first array's flags
    data[145] |= 0x08  # complex
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="complex"):
        load_tfd(p)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    d = tmp_path_factory.mktemp("bases")
    return [save(d / f"b{compress}.mat", tfd_arrays(n=4, size=3), compress).read_bytes() for compress in (False, True)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, 1),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_mat_files_load_or_data_error(tmp_path, bases, which, edits, cut):
    data = bytearray(bases[which])
    for pos, value in edits:
        data[120 + pos % (len(data) - 120)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    p = tmp_path / "m.mat"
    p.write_bytes(bytes(data))
    try:
        folds = load_tfd_folds(p)
    except DataError:
        return
    n = folds.images.shape[0]
    assert folds.images.dtype == np.float32 and folds.images.ndim == 3
    assert 0.0 <= folds.images.min() and folds.images.max() <= 1.0
    for splits in folds.folds:
        idx = np.sort(np.concatenate(list(splits.values())))
        np.testing.assert_array_equal(idx, np.arange(n))
