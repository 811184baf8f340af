"""Tests for the image-folder dataset."""

from __future__ import annotations

import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from advnets.data.folder import SkippedImagesWarning, load_image_folder
from advnets.errors import DataError


def rgb(seed, h=8, w=8):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_folder(root, n=10, h=8, w=8):
    """n lossless RGB PNGs in two sub-folders; returns {relative path: HxWx3 array}."""
    images = {}
    for i in range(n):
        rel = f"{'ab'[i % 2]}/img_{i:02d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        arr = rgb(i, h, w)
        Image.fromarray(arr).save(root / rel)
        images[rel] = arr
    return images


def as_set(X):
    return {x.tobytes() for x in X}


def chw(arr):
    return (arr.astype(np.float32) / 255).transpose(2, 0, 1)


def test_round_trip_and_deterministic_split(tmp_path):
    images = make_folder(tmp_path, n=10)
    out = load_image_folder(tmp_path, image_size=(8, 8), channels=3, valid_fraction=0.2, test_fraction=0.1, seed=3)
    assert set(out) == {"train", "valid", "test"}
    assert [out[s].shape[0] for s in ("train", "valid", "test")] == [7, 2, 1]
    for X in out.values():
        assert X.dtype == np.float32 and X.shape[1:] == (3, 8, 8)
        assert X.min() >= 0 and X.max() <= 1
    # every image appears exactly once, with exact values
    expected = {chw(a).tobytes() for a in images.values()}
    got = [x.tobytes() for s in out.values() for x in s]
    assert len(got) == 10 and set(got) == expected
    # the split is the documented permutation of the sorted relative paths
    paths = sorted(images)
    perm = np.random.default_rng(3).permutation(10)
    assert out["test"][0].tobytes() == chw(images[paths[perm[0]]]).tobytes()
    valid_paths = sorted(paths[i] for i in perm[1:3])
    np.testing.assert_array_equal(out["valid"], np.stack([chw(images[p]) for p in valid_paths]))
    train_paths = sorted(paths[i] for i in perm[3:])
    np.testing.assert_array_equal(out["train"], np.stack([chw(images[p]) for p in train_paths]))
    # same seed, same split; another seed, another split
    again = load_image_folder(tmp_path, image_size=(8, 8), valid_fraction=0.2, test_fraction=0.1, seed=3)
    for s in out:
        np.testing.assert_array_equal(out[s], again[s])
    other = load_image_folder(tmp_path, image_size=8, valid_fraction=0.2, test_fraction=0.1, seed=4)
    assert as_set(other["train"]) != as_set(out["train"])


def test_greyscale_and_jpeg(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (6, 6), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(rgb(1, 6, 6)).save(tmp_path / "c.JPEG", quality=95)
    out = load_image_folder(tmp_path, image_size=(6, 6), channels=1, valid_fraction=0, test_fraction=0)
    X = out["train"]
    assert X.shape == (2, 1, 6, 6)
    np.testing.assert_array_equal(X[1, 0], grey.astype(np.float32) / 255)  # g.png sorts after c.JPEG
    out3 = load_image_folder(tmp_path, image_size=(6, 6), channels=3, valid_fraction=0, test_fraction=0)
    np.testing.assert_array_equal(out3["train"][1], np.repeat(X[1], 3, axis=0))


def test_resize_shorter_side_then_centre_crop(tmp_path):
    # 20 wide x 10 high: left quarter black, middle half white, right quarter black
    arr = np.zeros((10, 20), dtype=np.uint8)
    arr[:, 5:15] = 255
    Image.fromarray(arr).save(tmp_path / "wide.png")
    X = load_image_folder(tmp_path, image_size=(5, 5), channels=1, valid_fraction=0, test_fraction=0)["train"]
    assert X.shape == (1, 1, 5, 5)
    # the centre crop of the 5x10 resize is (almost) all white
    assert X.min() > 0.9
    # a non-square target keeps the aspect of the crop: 4 high, 8 wide takes the middle 20x10
    Y = load_image_folder(tmp_path, image_size=(4, 4 * 2), channels=1, valid_fraction=0, test_fraction=0)["train"]
    assert Y.shape == (1, 1, 4, 8)
    assert Y[0, 0, :, 0].max() < 0.1 and Y[0, 0, :, 4].min() > 0.9


def test_modes_are_converted(tmp_path):
    Image.fromarray(rgb(0, 4, 4)).convert("P").save(tmp_path / "p.png")
    rgba = np.dstack([rgb(1, 4, 4), np.full((4, 4), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    wide = np.full((4, 4), 65535, dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "w16.png")
    out = load_image_folder(tmp_path, image_size=4, channels=3, valid_fraction=0, test_fraction=0)["train"]
    assert out.shape == (3, 3, 4, 4)
    np.testing.assert_array_equal(out[1], chw(rgba[..., :3]))
    np.testing.assert_array_equal(out[2], np.ones((3, 4, 4), np.float32))  # 16-bit white stays white


def test_no_images(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match=rf"{tmp_path.name}.*no images found"):
        load_image_folder(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="absent.*not found"):
        load_image_folder(tmp_path / "absent")


def test_zero_byte_and_corrupt_images_are_skipped_with_a_count(tmp_path):
    images = make_folder(tmp_path, n=6)
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    (tmp_path / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    good = (tmp_path / "a" / "img_00.png").read_bytes()
    (tmp_path / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "b" / "text.png").write_text("hello")
    with pytest.warns(SkippedImagesWarning, match=r"skipped 4 of 10") as rec:
        out = load_image_folder(tmp_path, image_size=8, valid_fraction=0, test_fraction=0)
    msg = str(rec[0].message)
    assert rec[0].filename == __file__  # the warning points at load_image_folder's caller
    for name in ("a/empty.png", "b/corrupt.jpg", "b/truncated.png", "b/text.png"):
        assert name in msg
    assert "empty file" in msg
    assert out["train"].shape[0] == 6
    assert as_set(out["train"]) == {chw(a).tobytes() for a in images.values()}


def test_all_unreadable(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "y.jpg").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"none of the 2 image files could be read"):
        load_image_folder(tmp_path)


def test_skipping_does_not_move_other_files_between_splits(tmp_path):
    make_folder(tmp_path, n=12)
    before = load_image_folder(tmp_path, image_size=8, valid_fraction=0.25, test_fraction=0.25, seed=1)
    (tmp_path / "a" / "img_04.png").write_bytes(b"")
    with pytest.warns(SkippedImagesWarning, match="skipped 1 of 12"):
        after = load_image_folder(tmp_path, image_size=8, valid_fraction=0.25, test_fraction=0.25, seed=1)
    for s in before:
        assert as_set(after[s]) <= as_set(before[s])
    assert sum(len(after[s]) for s in after) == 11


def test_oversized_image_is_skipped(tmp_path, monkeypatch):
    make_folder(tmp_path, n=3, h=8, w=8)
    Image.fromarray(rgb(9, 40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 8x8 fits, 40x40 does not
    with pytest.warns(SkippedImagesWarning, match=r"skipped 1 of 4.*big\.png.*MAX_IMAGE_PIXELS"):
        out = load_image_folder(tmp_path, image_size=8, valid_fraction=0, test_fraction=0)
    assert out["train"].shape[0] == 3


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_decompression_bomb_header_is_skipped_fast(tmp_path):
    # A 100,000 x 100,000 PNG in under 100 bytes: only the header is ever read.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + _png_chunk(b"IEND", b"")
    )
    make_folder(tmp_path, n=2)
    (tmp_path / "bomb.png").write_bytes(bomb)
    start = time.perf_counter()
    with pytest.warns(SkippedImagesWarning, match=r"skipped 1 of 3.*bomb\.png.*MAX_IMAGE_PIXELS"):
        out = load_image_folder(tmp_path, image_size=8, valid_fraction=0, test_fraction=0)
    assert time.perf_counter() - start < 2.0
    assert out["train"].shape[0] == 2


def _png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def test_a_png_declaring_a_zero_dimension_is_refused_naming_the_file(tmp_path):
    """Issue 18: a header declaring a zero width or height is refused (skipped, named), never an empty image."""
    make_folder(tmp_path, n=2)
    (tmp_path / "zero_wide.png").write_bytes(_png_declaring(0, 8))
    (tmp_path / "zero_high.png").write_bytes(_png_declaring(8, 0))
    with pytest.warns(SkippedImagesWarning, match=r"skipped 2 of 4") as rec:
        out = load_image_folder(tmp_path, image_size=8, valid_fraction=0, test_fraction=0)
    assert "zero_wide.png" in str(rec[0].message) and "zero_high.png" in str(rec[0].message)
    assert out["train"].shape == (2, 3, 8, 8)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "zero.png").write_bytes(_png_declaring(0, 8))
    with pytest.raises(DataError, match=r"alone: none of the 1 image files could be read: zero\.png"):
        load_image_folder(alone)


def test_non_png_jpeg_content_is_skipped(tmp_path):
    make_folder(tmp_path, n=2)
    Image.fromarray(rgb(5)).save(tmp_path / "really_a_gif.png", format="GIF")
    with pytest.warns(SkippedImagesWarning, match=r"really_a_gif\.png"):
        load_image_folder(tmp_path, image_size=8, valid_fraction=0, test_fraction=0)


def test_other_files_are_ignored(tmp_path):
    make_folder(tmp_path, n=2)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = load_image_folder(tmp_path, image_size=8, valid_fraction=0, test_fraction=0)
    assert out["train"].shape[0] == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": (0, 8)}, "image_size"),
        ({"image_size": (8,)}, "image_size"),
        ({"image_size": "8x8"}, "image_size"),
        ({"channels": 2}, "channels"),
        ({"channels": True}, "channels"),
        ({"valid_fraction": -0.1}, "valid_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"valid_fraction": 0.6, "test_fraction": 0.4}, "below 1"),
        ({"valid_fraction": "0.1"}, "valid_fraction"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    make_folder(tmp_path, n=2)
    with pytest.raises(DataError, match=match):
        load_image_folder(tmp_path, **kwargs)


def test_fractions_that_leave_train_empty(tmp_path):
    make_folder(tmp_path, n=3)
    with pytest.raises(DataError, match="no images left for training"):
        load_image_folder(tmp_path, image_size=8, valid_fraction=0.5, test_fraction=0.49)
