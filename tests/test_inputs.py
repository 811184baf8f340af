"""One coercer of each kind (advnets.evaluate.inputs): every metric names a bad input the same way."""

import numpy as np
import pytest
import torch

from advnets.errors import DataError
from advnets.evaluate.inputs import as_images, as_rows


def test_as_rows_flattens_images_to_float64_rows_and_keeps_the_values():
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)
    rows = as_rows(x, "samples")
    assert rows.dtype == np.float64 and rows.shape == (2, 12)
    np.testing.assert_array_equal(rows, np.arange(24).reshape(2, 12))
    assert as_rows([[1, 2], [3, 4]], "points", flatten=False).tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        ([["a", "b"]], {}, r"^samples: expected an array of numbers, got list"),
        (np.zeros(5), {}, r"^samples: expected shape N x d or N x C x H x W, got \(5,\)"),
        (np.zeros((2, 3, 4)), {"flatten": False}, r"^samples: expected shape N x d, got \(2, 3, 4\)"),
        (np.zeros((1, 3)), {"min_rows": 2}, r"^samples has 1 rows; need at least 2"),
        (np.zeros((3, 0)), {}, r"^samples has rows of size 0"),
        (
            np.array([[0.0, 1.0], [np.nan, 0.0], [np.inf, 1.0]]),
            {},
            r"^samples: 2 row\(s\) hold NaN or infinity \(first: row 1\)",
        ),
    ],
)
def test_as_rows_names_the_input_and_what_was_expected(x, kwargs, message):
    with pytest.raises(DataError, match=message):
        as_rows(x, "samples", **kwargs)


def test_as_images_keeps_the_tensor_and_takes_numpy_without_a_copy():
    x = torch.rand(4, 1, 8, 8)
    assert as_images(x, "images") is not None and torch.equal(as_images(x, "images"), x)
    a = np.random.default_rng(0).random((3, 64), dtype=np.float32)
    t = as_images(a, "images")
    assert t.dtype == torch.float32 and t.data_ptr() == torch.from_numpy(a).data_ptr()


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (
            torch.zeros(4, 64, dtype=torch.uint8),
            r"^real images: expected a non-empty array of N images of floating-point",
        ),
        (torch.zeros(0, 64), r"^real images: expected a non-empty array"),
        (torch.zeros(64), r"^real images: expected a non-empty array"),
        ([[0.0]], r"^real images: expected a non-empty array .*got list"),
        (torch.tensor([[0.0, float("nan")]]), r"^real images contain NaN or infinite values"),
    ],
)
def test_as_images_names_the_input_and_what_was_expected(x, message):
    with pytest.raises(DataError, match=message):
        as_images(x, "real images")
