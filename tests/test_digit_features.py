"""The shipped digit feature network (advnets.evaluate.digit_features): pinned, golden, accurate."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from advnets.data import load_dataset
from advnets.errors import DataError
from advnets.evaluate import digit_features as df

# Features of ring() below, printed once by the shipped network (rounded to 5 decimals). A change of
# weights, architecture or preprocessing changes them; other CPUs and GPUs agree to float tolerance.
GOLDEN = [
    6.71811, 0.0, 0.0, 0.0, 1.06254, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.92897, 0.0, 0.0, 0.0,
    0.0, 0.10934, 0.0, 0.0, 2.6232, 0.0, 0.14834, 0.0, 4.92109, 0.0, 0.0, 0.0, 6.82104, 0.6611, 0.0, 0.74558,
    0.71949, 0.0, 6.10984, 2.88797, 0.0, 0.0, 0.0, 0.0, 0.0, 0.09062, 0.27801, 0.0, 2.85064, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.38625, 0.0, 0.0, 3.37201, 1.46503, 3.29402, 0.0, 0.0, 0.0, 0.0, 0.0, 0.54216,
    1.67348, 0.0, 0.0, 0.0, 0.0, 7.02058, 5.34132, 0.0, 3.87149, 0.0, 0.0897, 0.0, 0.0, 0.0, 1.79768, 5.00867,
    4.3349, 0.0, 0.16319, 0.0, 0.0, 0.0, 1.16076, 0.0, 0.0, 0.0, 0.0, 0.0, 2.48093, 0.0, 0.0, 0.0,
    4.32716, 0.0, 6.42218, 3.03847, 0.0, 4.67942, 1.39962, 0.0, 0.0, 0.0, 5.69979, 0.0, 0.0, 3.72699, 0.0, 0.11647,
    0.0, 0.0, 0.0, 0.0, 1.97087, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.81838, 0.0,
]  # fmt: skip


def ring() -> torch.Tensor:
    """A deterministic synthetic '0': a soft ring of radius 7 pixels centred in 28x28."""
    i = torch.arange(28, dtype=torch.float32)
    r = ((i[:, None] - 13.5) ** 2 + (i[None, :] - 13.5) ** 2).sqrt()
    return torch.exp(-((r - 7.0) ** 2) / 4.0).reshape(1, 1, 28, 28)


@pytest.fixture(scope="module")
def net():
    return df.load_digit_network()


def test_the_shipped_weights_have_the_pinned_sha256():
    assert hashlib.sha256(df.WEIGHTS_FILE.read_bytes()).hexdigest() == df.SHA256
    assert df.WEIGHTS_FILE.stat().st_size < 1_000_000  # small enough to ship inside the wheel


def test_golden_features_of_a_fixed_input(net):
    f = df.digit_features(ring(), net)
    assert f.shape == (1, df.FEATURE_DIM) and f.dtype == torch.float32
    torch.testing.assert_close(f[0], torch.tensor(GOLDEN), rtol=1e-4, atol=1e-4)
    assert int(net.predict(ring())[0]) == 0  # and it is read as a zero


def test_features_do_not_depend_on_the_batch_or_the_input_layout(net):
    x = torch.cat([ring(), ring().flip(-1).roll(3, dims=-2)])
    one = torch.cat([df.digit_features(x[i : i + 1], net) for i in range(2)])
    torch.testing.assert_close(df.digit_features(x, net, batch_size=1), one)
    torch.testing.assert_close(df.digit_features(x.reshape(2, 784), net), one)
    torch.testing.assert_close(df.digit_features(x.reshape(2, 28, 28).numpy(), net), one)


def test_accuracy_on_the_embedded_test_splits(net):
    """embedded-mnist holds MNIST training digits, which the network saw: 100 % (500 images);
    the 8x8 digits are another dataset, resized: 82.7 % (148 of 179 test images)."""
    mnist = load_dataset("embedded")
    assert net.accuracy(df.preprocess_digits(mnist.test), mnist.test_labels) >= 0.99
    digits = load_dataset("embedded-digits")
    assert net.accuracy(df.preprocess_digits(digits.test), digits.test_labels) >= 0.80


def test_eight_by_eight_digits_are_resized_into_a_centred_20_pixel_box():
    x = torch.ones(1, 8, 8)
    y = df.preprocess_digits(x)
    assert y.shape == (1, 1, 28, 28)
    assert float(y[0, 0, 4:24, 4:24].min()) == pytest.approx(1.0, abs=1e-5)  # a constant stays constant
    assert float(y.sum()) == pytest.approx(400.0, abs=1e-3)  # and nothing lies outside the 20x20 box


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(2, 3, 28, 28), "grey 28x28 or 8x8"),
        (torch.zeros(2, 30, 30), "grey 28x28 or 8x8"),
        (torch.zeros(2, 28, 28, dtype=torch.uint8), "floating-point pixels"),
        (torch.full((2, 784), float("nan")), "NaN or infinite"),
        ([[0.0] * 784], "tensor or NumPy array"),
    ],
)
def test_preprocessing_refuses_bad_images(images, message):
    with pytest.raises(DataError, match=message):
        df.preprocess_digits(images)


def test_a_damaged_weights_file_is_refused(tmp_path):
    damaged = tmp_path / "digit_features.safetensors"
    shutil.copyfile(df.WEIGHTS_FILE, damaged)
    data = bytearray(damaged.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte in the last tensor
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"does not match the pinned .* damaged or replaced"):
        df.load_digit_network(damaged)


def test_a_truncated_or_missing_file_is_refused(tmp_path):
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(df.WEIGHTS_FILE.read_bytes()[:1000])
    with pytest.raises(DataError, match="not the digit feature network's weights"):
        df.load_digit_network(truncated, sha256=None)
    with pytest.raises(DataError, match="cannot read the digit feature network"):
        df.load_digit_network(tmp_path / "missing.safetensors")
