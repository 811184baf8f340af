"""Fréchet distance (advnets.evaluate.frechet) against the closed form and torchmetrics' formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from advnets.errors import DataError
from advnets.evaluate.frechet import fit_gaussian, frechet_distance, frechet_distance_from_moments


def closed_form_fd(mu1, s1, mu2, s2) -> float:
    """FD of two Gaussians from symmetric square roots: tr((√Σ1 Σ2 √Σ1)^½) = tr((Σ1Σ2)^½)."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def with_moments(rng, n: int, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """n rows whose sample mean and unbiased sample covariance are exactly mu and cov."""
    z = rng.standard_normal((n, len(mu)))
    z -= z.mean(axis=0)
    white = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = np.linalg.solve(white, z.T).T  # sample covariance I
    return mu + z @ np.linalg.cholesky(cov).T


def random_cov(rng, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_fd_of_two_known_gaussians_in_64_dimensions_equals_the_closed_form():
    rng = np.random.default_rng(0)
    d = 64
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) + 0.5
    s1, s2 = random_cov(rng, d), random_cov(rng, d)
    x, y = with_moments(rng, 500, mu1, s1), with_moments(rng, 700, mu2, s2)
    expected = closed_form_fd(mu1, s1, mu2, s2)
    got = frechet_distance(x, y)
    assert got["fd"] == pytest.approx(expected, rel=1e-8)
    assert (got["n_real"], got["n_generated"], got["dim"], got["sqrtm_offset"]) == (500, 700, 64, 0.0)


def test_fd_of_diagonal_gaussians_matches_the_scalar_formula():
    rng = np.random.default_rng(1)
    d = 50
    a, b = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.3)
    expected = d * 0.09 + np.sum(a + b - 2 * np.sqrt(a * b))
    got = frechet_distance_from_moments(mu1, np.diag(a), mu2, np.diag(b))["fd"]
    assert got == pytest.approx(expected, rel=1e-10)


def test_fd_matches_torchmetrics_formula_on_identical_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 64)) @ rng.standard_normal((64, 64)) * 0.3 + 1.0
    y = rng.standard_normal((300, 64)) @ rng.standard_normal((64, 64)) * 0.3 + 1.2

    class Identity(torch.nn.Module):
        num_features = 64

        def forward(self, f):
            return f

    tm = FrechetInceptionDistance(feature=Identity())
    tm.update(torch.from_numpy(x), real=True)
    tm.update(torch.from_numpy(y), real=False)
    expected = float(tm.compute())
    assert frechet_distance(x, y)["fd"] == pytest.approx(expected, rel=1e-6)


def test_fd_matches_pytorch_fid_reference_formula():
    """pytorch-fid's calculate_frechet_distance (it cannot be imported here: it needs torchvision),
    written out as in its fid_score.py: scipy sqrtm of the product, real part of the trace."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((300, 60)), rng.standard_normal((250, 60)) * 1.1 + 0.2
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    diff = mu1 - mu2
    expected = diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean))
    assert frechet_distance(x, y)["fd"] == pytest.approx(expected, rel=1e-9)


def test_fd_of_a_set_with_itself_is_zero_and_fd_is_symmetric_and_permutation_invariant():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 50))
    y = rng.standard_normal((200, 50)) * 0.8 + 0.1
    assert abs(frechet_distance(x, x)["fd"]) < 1e-9
    xy, yx = frechet_distance(x, y)["fd"], frechet_distance(y, x)["fd"]
    assert xy > 1.0 and xy == pytest.approx(yx, rel=1e-9)
    perm = rng.permutation(50)
    assert frechet_distance(x[:, perm], y[:, perm])["fd"] == pytest.approx(xy, rel=1e-9)
    rows = rng.permutation(300)
    assert frechet_distance(x[rows], y)["fd"] == pytest.approx(xy, rel=1e-9)


def test_fit_gaussian_is_the_unbiased_sample_covariance():
    x = np.random.default_rng(5).standard_normal((40, 3))
    mu, cov = fit_gaussian(x)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-12)


def test_fd_refuses_mismatched_dimensions():
    with pytest.raises(DataError, match="dimension 5 but real features have 4"):
        frechet_distance(np.zeros((10, 4)), np.zeros((10, 5)))


def test_fd_refuses_fewer_samples_than_feature_dimensions():
    rng = np.random.default_rng(6)
    with pytest.raises(DataError, match=r"generated features: 64 samples of dimension 64.*N > d"):
        frechet_distance(rng.standard_normal((100, 64)), rng.standard_normal((64, 64)))


def test_fd_refuses_nan_features():
    x = np.random.default_rng(7).standard_normal((20, 3))
    y = x.copy()
    y[4, 1] = np.nan
    with pytest.raises(DataError, match=r"generated features: 1 row\(s\) hold NaN or infinity \(first: row 4\)"):
        frechet_distance(x, y)


def test_fd_refuses_a_square_root_with_a_large_imaginary_part():
    # A covariance with a negative eigenvalue (not a covariance): the product has a
    # negative eigenvalue and its root is genuinely complex.
    s1 = np.diag([1.0, 1.0])
    s2 = np.diag([1.0, -1.0])
    with pytest.raises(DataError, match="imaginary parts up to 1 on its diagonal"):
        frechet_distance_from_moments(np.zeros(2), s1, np.zeros(2), s2)
