"""Stand-ins for G's samples built from the training split alone: the honest context of every score.

A Parzen score can be high for models that generate nothing useful (Theis, van den Oord & Bethge,
2016), and any metric means little without its floor and its failure modes beside it. So the Parzen
table (:func:`advnets.evaluate.protocol.reference_protocol` with ``baselines=True``, through
:func:`baseline_rows`) and the metrics table (:func:`context_samples`, scored by
:func:`advnets.evaluate.metrics.evaluate_table`) both show what trivial "models" score:
real training images (the floor a perfect G reaches at this N), k-means centroids (blurry averages
that beat real images on Parzen) and a Gaussian fitted to the training split.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from advnets.errors import DataError
from advnets.evaluate.options import MetricOptions
from advnets.evaluate.parzen import DEFAULT_SIGMAS, parzen_evaluate
from advnets.io import atomic_write_bytes, write_failure

__all__ = ["BASELINE_VERSION", "baseline_rows", "baseline_samples", "context_samples"]

#: Validation images and samples of the reference protocol (as advnets.evaluate.protocol).
_VALID_SIZE, _NUM_SAMPLES = 1000, 10000


def baseline_rows(
    dataset: Any,
    m: int = _NUM_SAMPLES,
    *,
    valid_size: int = _VALID_SIZE,
    split: str = "test",
    sigmas: Any = DEFAULT_SIGMAS,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    note: Callable[[str], None] | None = None,
    options: MetricOptions = MetricOptions(),
) -> dict[str, dict[str, Any]]:
    """:func:`baseline_samples` of the training split (m of each; cached in ``cache_dir``, ``note`` told
    of a fit), scored by :func:`advnets.evaluate.protocol.reference_protocol`'s protocol as ``options``
    say, with a progress bar over the fits and the three scorings when ``options.progress``."""
    from tqdm.auto import tqdm

    valid, test = dataset.valid[:valid_size], dataset.split(split)
    rows = {}
    with tqdm(total=4, desc="baselines", unit="step", disable=not options.progress) as bar:
        bar.set_postfix_str("k-means and a Gaussian")
        fakes = baseline_samples(dataset.train, m, seed, cache_dir=cache_dir, note=note)
        bar.update()
        for name, fake in fakes.items():
            bar.set_postfix_str(name)
            row = parzen_evaluate(test, fake, valid=valid, sigmas=sigmas, check_range=False, **options.kwargs())
            rows[name] = {**row, "n_valid": len(valid)}
            bar.update()
    return rows


#: Bump when :func:`baseline_samples` changes what it builds: cached rows of older versions are rebuilt.
BASELINE_VERSION = 1


def baseline_samples(
    train: torch.Tensor,
    m: int,
    seed: int,
    *,
    cache_dir: str | Path | None = None,
    note: Callable[[str], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Stand-ins for G's samples, built from the training split only:

    - ``real training images``: m training images (all of them if fewer);
    - ``k-means centroids``: k = min(m, N_train // 2) centroids of the training set
      (scikit-learn's MiniBatchKMeans, float64);
    - ``Gaussian fit``: m draws from a Gaussian with the training set's mean and
      covariance (not clipped to [0, 1]).

    Each is float64 with ``d`` = pixels per image: ``m x d`` (the centroids ``k x d``). The k-means fit
    is the slow part (10,000 centroids of full MNIST: 47 minutes on one loaded CPU thread), so with
    ``cache_dir`` the rows are kept in ``baselines-<key>.safetensors`` there, keyed by the training
    images' SHA-256, ``m``, ``seed``, scikit-learn's version and :data:`BASELINE_VERSION`, and read
    back on the next call; a damaged file is rebuilt with a warning. ``note`` is called with one line
    before a fit that is not cached.

    Raises:
        DataError: the cache file cannot be written.
    """
    import sklearn

    from advnets.evaluate.features import images_fingerprint

    x = train.reshape(len(train), -1).double()
    meta = {
        "train_sha256": images_fingerprint(train),
        "m": str(int(m)),
        "seed": str(int(seed)),
        "sklearn": sklearn.__version__,
        "version": str(BASELINE_VERSION),
    }
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:24]
        path = Path(cache_dir).expanduser() / f"baselines-{key}.safetensors"
        cached = _read_baselines(path, meta)
        if cached is not None:
            return cached
    k = max(1, min(m, len(x) // 2))
    if note is not None:
        where = f"; cached in {path} for the next evaluation" if path is not None else ""
        note(f"fitting k-means ({k} centroids of {len(x)} training images) and a Gaussian{where}")
    rows = _build_baselines(x, m, k, seed)
    if path is not None:
        from safetensors.torch import save

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, save({n: v.contiguous() for n, v in rows.items()}, metadata=meta))
        except OSError as e:
            raise DataError(
                write_failure(e.filename or path, e, "the baseline cache", "another --data-dir or $ADVNETS_DATA")
            ) from e
    return rows


def _build_baselines(x: torch.Tensor, m: int, k: int, seed: int) -> dict[str, torch.Tensor]:
    from sklearn.cluster import MiniBatchKMeans

    gen = torch.Generator().manual_seed(seed)
    real = x[torch.randperm(len(x), generator=gen)[: min(m, len(x))]]
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=max(1024, k))
    centroids = torch.from_numpy(km.fit(x.numpy()).cluster_centers_)
    mean = x.mean(dim=0)
    cov = torch.cov(x.T) + 1e-6 * torch.eye(x.shape[1], dtype=x.dtype)  # jitter: constant border pixels
    chol = torch.linalg.cholesky(cov)
    gauss = mean + torch.randn(m, x.shape[1], generator=gen, dtype=x.dtype) @ chol.T
    return {"real training images": real, "k-means centroids": centroids, "Gaussian fit": gauss}


def _read_baselines(path: Path, meta: dict[str, str]) -> dict[str, torch.Tensor] | None:
    """The rows cached in ``path`` when it exists and was built for ``meta``; else None (warning if unreadable)."""
    if not path.is_file():
        return None
    from safetensors import safe_open
    from safetensors.torch import load

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}) != meta:
                return None
        rows = load(path.read_bytes())
    except Exception as e:  # a truncated or foreign file: rebuild it
        warnings.warn(f"{path}: unreadable baseline cache ({type(e).__name__}); rebuilding", stacklevel=3)
        return None
    names = ("real training images", "k-means centroids", "Gaussian fit")
    return {n: rows[n] for n in names} if set(rows) == set(names) else None


def context_samples(
    train_images: Any,
    num_samples: int,
    seed: int = 0,
    *,
    cache_dir: str | Path | None = None,
    note: Callable[[str], None] | None = None,
) -> dict[str, torch.Tensor]:
    """The honest context rows as images shaped like ``train_images``, from the training split only:
    ``real training images`` (the floor: what a perfect G scores at this N), ``k-means centroids`` and
    ``Gaussian fit`` (:func:`baseline_samples`; the fit is not clipped to [0, 1]).
    ``cache_dir`` keeps the slow k-means fit between calls; ``note`` is told when a fit starts.

    Raises:
        DataError: ``train_images`` are not float images with at least two rows.
    """
    train = torch.as_tensor(train_images).detach()
    if not train.is_floating_point() or train.ndim < 2 or len(train) < 2:
        raise DataError(f"training images: expected float images N x C x H x W with N >= 2, got {tuple(train.shape)}")
    rows = baseline_samples(train, int(num_samples), int(seed), cache_dir=cache_dir, note=note)
    return {k: v.float().reshape(len(v), *train.shape[1:]) for k, v in rows.items()}
