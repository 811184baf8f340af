"""Tests for exact nearest-neighbour search and the chunked distance kernels.

advnets.evaluate.nearest (Figure 2's memorisation check) is built on
advnets.evaluate.distances, which is tested here too. The reference is always
brute force with explicit differences in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advnets.errors import DataError
from advnets.evaluate.distances import (
    as_matrix,
    chunk_shape,
    iter_sq_distances,
    no_tf32,
    pairwise_sq_distances,
    sq_distances,
)
from advnets.evaluate.nearest import distance_summary, memorization_stats, nearest_neighbors


def brute_sq(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    r = np.asarray(r, dtype=np.float64).reshape(len(r), -1)
    out = []
    for i in range(0, len(x), 8):
        diff = x[i : i + 8, None, :] - r[None, :, :]
        out.append((diff * diff).sum(axis=2))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((70, 30)), rng.random((450, 30))


# --------------------------------------------------------------------------- distances


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("chunks", [{}, {"query_chunk": 9, "reference_chunk": 41}, {"max_bytes": 20000}])
def test_pairwise_sq_distances_match_explicit_differences(data, dtype, rtol, chunks):
    x, r = data
    got = pairwise_sq_distances(x, r, dtype=dtype, device="cpu", **chunks)
    assert got.dtype == dtype and got.shape == (70, 450)
    np.testing.assert_allclose(got.double().numpy(), brute_sq(x, r), rtol=rtol)


def test_sq_distances_clamped_at_zero():
    # the expansion of ‖x − x‖² is round-off around 0; it must come out ≥ 0
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(100.0, 1.0, (50, 40)))
    d = sq_distances(x, x)
    assert (d >= 0).all()
    assert d.diagonal().abs().max() < 1e-8
    full = pairwise_sq_distances(x, x, device="cpu", query_chunk=7, reference_chunk=13)
    assert (full >= 0).all()
    assert full.diagonal().max() < 1e-9  # centring keeps the round-off small


def test_iter_blocks_tile_the_matrix_exactly_once(data):
    x, r = data
    seen = np.zeros((70, 450), dtype=int)
    for blk in iter_sq_distances(x, r, device="cpu", query_chunk=16, reference_chunk=100):
        assert blk.values.shape == (blk.q1 - blk.q0, blk.r1 - blk.r0)
        seen[blk.q0 : blk.q1, blk.r0 : blk.r1] += 1
        ref = brute_sq(x[blk.q0 : blk.q1], r[blk.r0 : blk.r1])
        np.testing.assert_allclose(blk.values.numpy(), ref, rtol=1e-12)
    assert (seen == 1).all()


def test_score_form_is_a_per_row_transform_of_distances(data):
    x, r = data
    for blk in iter_sq_distances(x, r, device="cpu", form="score", query_chunk=30):
        d = (blk.query_sq.unsqueeze(1) - 2 * blk.values).numpy()
        np.testing.assert_allclose(d, brute_sq(x[blk.q0 : blk.q1], r[blk.r0 : blk.r1]), rtol=1e-11, atol=1e-11)


def test_chunk_shape_respects_budget():
    qc, rc = chunk_shape(10_000, 10_000, 8, 64 * 2**20, buffers=2)
    assert qc * rc * 8 * 2 <= 64 * 2**20
    assert rc == 10_000  # whole sample set in one block when it fits
    qc, rc = chunk_shape(100, 60_000, 8, 2**20, reference_row_bytes=792 * 8)
    assert rc * 792 * 8 <= 2**20 // 4 and qc * rc * 8 <= 2**20
    assert chunk_shape(5, 7, 8, 1) == (1, 1)
    assert chunk_shape(50, 70, 8, 2**30, query_chunk=8, reference_chunk=500) == (8, 70)


def test_no_tf32_restores_settings():
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with no_tf32():
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_as_matrix_flattens_and_validates():
    assert as_matrix(np.zeros((4, 3, 5, 2)), "x").shape == (4, 30)
    assert as_matrix([[1, 2], [3, 4]], "x").shape == (2, 2)
    with pytest.raises(DataError, match="x: expected an array of shape"):
        as_matrix(np.zeros(3), "x")
    with pytest.raises(DataError, match="x: expected at least one point"):
        as_matrix(np.zeros((0, 3)), "x")
    with pytest.raises(DataError, match="x: expected a real-valued"):
        as_matrix(np.zeros((2, 2), dtype=complex), "x")
    a = np.zeros((3, 3))
    a.setflags(write=False)
    assert as_matrix(a[::-1], "x").shape == (3, 3)  # read-only, negative strides


# --------------------------------------------------------------------------- nearest


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "chunks",
    [
        {},
        {"chunk_size": 24, "reference_chunk_size": 100},
        {"chunk_size": 1, "reference_chunk_size": 450},
        {"max_bytes": 20000},
    ],
)
def test_nearest_equals_brute_force_argmin(data, dtype, chunks):
    x, r = data
    sq = brute_sq(x, r)
    idx, dist = nearest_neighbors(x, r, dtype=dtype, device="cpu", **chunks)
    assert idx.dtype == torch.int64 and dist.dtype == torch.float64
    assert idx.shape == dist.shape == (70,)
    np.testing.assert_array_equal(idx.numpy(), sq.argmin(axis=1))
    # distances are Euclidean (not squared) and from the direct formula
    np.testing.assert_allclose(dist.numpy(), np.sqrt(sq.min(axis=1)), rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nearest_mnist_like_shapes(dtype):
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, (3000, 28, 28), dtype=np.uint8)
    q = rng.integers(0, 256, (25, 28, 28)).astype(np.float32)
    idx, dist = nearest_neighbors(q, train, dtype=dtype, device="cpu", reference_chunk_size=700)
    sq = brute_sq(q, train)
    np.testing.assert_array_equal(idx.numpy(), sq.argmin(axis=1))
    np.testing.assert_allclose(dist.numpy(), np.sqrt(sq.min(axis=1)), rtol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nearest_exact_under_near_ties(dtype):
    # near-duplicates 1e-9 apart: far below float32 round-off of the products,
    # so only the certified candidate set + exact re-ranking can get them right
    rng = np.random.default_rng(6)
    base = rng.random((40, 50))
    ref = np.concatenate([base + rng.normal(0, 1e-9, base.shape) for _ in range(6)])
    ref = ref[rng.permutation(len(ref))]
    x = base[:25] + rng.normal(0, 1e-3, (25, 50))
    sq = brute_sq(x, ref)
    idx, dist = nearest_neighbors(x, ref, dtype=dtype, device="cpu", reference_chunk_size=50)
    np.testing.assert_array_equal(idx.numpy(), sq.argmin(axis=1))
    np.testing.assert_allclose(dist.numpy(), np.sqrt(sq.min(axis=1)), rtol=1e-14)


def test_duplicates_and_ties_resolve_to_lowest_index(data):
    x, r = data
    dup = np.vstack([r] * 7)  # every reference row seven times
    for kw in [{}, {"reference_chunk_size": 100}, {"reference_chunk_size": 449}]:
        idx, dist = nearest_neighbors(x, dup, device="cpu", **kw)
        np.testing.assert_array_equal(idx.numpy(), brute_sq(x, r).argmin(axis=1))
    # queries that are reference rows: distance exactly 0 at the first copy
    idx, dist = nearest_neighbors(r[[5, 17, 300]], dup, device="cpu", reference_chunk_size=64)
    np.testing.assert_array_equal(idx.numpy(), [5, 17, 300])
    assert (dist == 0).all()
    # exact equidistant tie between different points: the lowest index wins,
    # also when the tied points sit in different reference chunks
    ref = np.array([[3.0, 0, 0], [0, 0, 5.0], [-3.0, 0, 0], [0, 3.0, 0]])
    for kw in [{}, {"reference_chunk_size": 1}, {"reference_chunk_size": 2}, {"dtype": torch.float32}]:
        idx, dist = nearest_neighbors(np.zeros((1, 3)), ref, device="cpu", **kw)
        assert int(idx[0]) == 0 and float(dist[0]) == 3.0
        idx, _ = nearest_neighbors(np.zeros((1, 3)), ref[::-1].copy(), device="cpu", **kw)
        assert int(idx[0]) == 0  # now [0, 3, 0] comes first


def test_single_reference_and_single_query():
    idx, dist = nearest_neighbors([[0.0, 0.0]], [[3.0, 4.0]], device="cpu")
    assert int(idx[0]) == 0 and float(dist[0]) == 5.0


def test_nearest_errors(data):
    x, r = data
    with pytest.raises(DataError, match=r"queries.*30.*29"):
        nearest_neighbors(x[:, :29], r)
    with pytest.raises(DataError, match="reference.*empty"):
        nearest_neighbors(x, r[:0])
    with pytest.raises(DataError, match="queries.*empty"):
        nearest_neighbors(x[:0], r)
    xb = x.copy()
    xb[2, 2] = np.nan
    with pytest.raises(DataError, match="queries.*finite"):
        nearest_neighbors(xb, r)
    rb = r.copy()
    rb[0, 0] = np.inf
    with pytest.raises(DataError, match="reference.*finite"):
        nearest_neighbors(x, rb)
    with pytest.raises(DataError, match="dtype"):
        nearest_neighbors(x, r, dtype=torch.int64)
    with pytest.raises(DataError, match="reference_chunk_size"):
        nearest_neighbors(x, r, reference_chunk_size=-3)


# --------------------------------------------------------------------------- memorisation


def test_distance_summary_matches_numpy():
    a = np.random.default_rng(3).random(101)
    s = distance_summary(torch.from_numpy(a))
    assert s["median"] == pytest.approx(np.median(a))
    assert s["p5"] == pytest.approx(np.percentile(a, 5))
    assert s["p95"] == pytest.approx(np.percentile(a, 95))
    assert s["min"] == a.min() and s["mean"] == pytest.approx(a.mean()) and s["n"] == 101


def test_memorization_copies_of_training_images_give_ratio_zero():
    rng = np.random.default_rng(4)
    train, heldout = rng.random((500, 64)), rng.random((100, 64))
    copies = train[rng.choice(500, 80, replace=False)]
    st = memorization_stats(copies, train, heldout, device="cpu")
    assert st["ratio"] == 0.0
    assert st["samples"]["max"] == 0.0 and st["samples"]["n"] == 80
    assert st["frac_below_heldout_p5"] == 1.0
    assert st["heldout"]["median"] > 0
    # the summaries are of the true nearest-training distances
    ref = np.sqrt(brute_sq(heldout, train).min(axis=1))
    assert st["heldout"]["median"] == pytest.approx(np.median(ref), rel=1e-12)


def test_memorization_fresh_samples_look_like_heldout():
    rng = np.random.default_rng(5)
    train, heldout, fresh = rng.random((800, 20)), rng.random((300, 20)), rng.random((300, 20))
    st = memorization_stats(fresh, train, heldout, device="cpu", chunk_size=64)
    assert 0.85 < st["ratio"] < 1.15
    # samples that are slightly perturbed training images are flagged
    near = train[:300] + rng.normal(0, 0.01, (300, 20))
    st2 = memorization_stats(near, train, heldout, device="cpu")
    assert st2["ratio"] < 0.1 and st2["frac_below_heldout_p5"] > 0.99


def test_memorization_errors():
    with pytest.raises(DataError, match="heldout"):
        memorization_stats(np.zeros((3, 4)), np.zeros((5, 4)), np.zeros((2, 5)))
    with pytest.raises(DataError, match="samples"):
        memorization_stats(np.zeros((3, 3)), np.zeros((5, 4)), np.zeros((2, 4)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nearest_cuda_matches_brute_force(data, dtype):
    x, r = data
    idx, dist = nearest_neighbors(x, torch.from_numpy(r).cuda(), dtype=dtype, reference_chunk_size=50)
    assert idx.device.type == "cpu"
    sq = brute_sq(x, r)
    np.testing.assert_array_equal(idx.numpy(), sq.argmin(axis=1))
    np.testing.assert_allclose(dist.numpy(), np.sqrt(sq.min(axis=1)), rtol=1e-14)
