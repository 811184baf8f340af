"""The paper's Table 1 protocol around the Parzen estimator, and honest baselines.

Reference protocol (paper §5; the authors' parzen_ll.py): draw 10,000 samples of
G, choose σ from numpy.logspace(-1, 0, 10) by the mean log-likelihood of
1,000 validation images, score the test set, report mean ± std/√N. On TFD σ
is chosen per fold and the standard error is taken across folds.

A Parzen score can be high for models that generate nothing useful (Theis,
van den Oord & Bethge, 2016), so :func:`baseline_samples` builds "samples"
from the training data itself (real images, k-means centroids, a fitted
Gaussian) to be scored by the same code beside the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advnets.errors import AdvnetsError, DataError
from advnets.evaluate.parzen import DEFAULT_SIGMAS, parzen_evaluate
from advnets.io import atomic_write_bytes, write_failure

# Table 1 of the paper: Parzen-window log-likelihood of the adversarial nets.
PAPER_TABLE1 = {
    "MNIST": (225.0, 2.0),
    "TFD": (2057.0, 26.0),
}

# Table 1's MNIST column in full (paper §5 and Table 1): every model, mean ± SE, in the paper's order.
PAPER_TABLE1_MNIST = {
    "DBN": (138.0, 2.0),
    "Stacked CAE": (121.0, 1.6),
    "Deep GSN": (214.0, 1.1),
    "Adversarial nets": PAPER_TABLE1["MNIST"],
}

#: Validation images the reference protocol chooses σ on (MNIST: train images 50,000-50,999).
REFERENCE_VALID_SIZE = 1000
#: Samples of G in the reference protocol's Parzen window.
REFERENCE_NUM_SAMPLES = 10000


def paper_row_for(dataset_name: str) -> tuple[str, tuple[float, float]] | None:
    """The paper's Table 1 entry comparable (at least in kind) with a dataset."""
    name = dataset_name.lower()
    if "mnist" in name and "fashion" not in name:
        return "MNIST", PAPER_TABLE1["MNIST"]
    if "tfd" in name:
        return "TFD", PAPER_TABLE1["TFD"]
    return None


def parse_sigmas(text: str) -> np.ndarray:
    """'logspace:A:B:N' (numpy.logspace(A, B, N)) or a comma-separated list."""
    try:
        if text.startswith("logspace:"):
            a, b, n = text.split(":")[1:]
            sigmas = np.logspace(float(a), float(b), int(n))
        else:
            sigmas = np.array([float(s) for s in text.split(",") if s.strip()])
    except ValueError:
        raise DataError(f"--sigmas {text}: expected 'logspace:A:B:N' or a comma-separated list of numbers") from None
    if sigmas.size == 0 or not np.all(np.isfinite(sigmas)) or np.any(sigmas <= 0):
        raise DataError(f"--sigmas {text}: expected at least one positive, finite bandwidth")
    return sigmas


def format_row(label: str, result: dict[str, Any]) -> str:
    """A Table-1-style row: 'label  225 ± 2  (σ = 0.2, N = 10000, M = 10000)'."""
    return (
        f"{label:<28s} {result['mean']:8.1f} ± {result['se']:<6.1f}"
        f"(σ = {result['sigma']:.4g}, N = {result['n']}, M = {result['m']})"
    )


def evaluate_folds(folds: list[dict[str, Any]], sigmas: Any = DEFAULT_SIGMAS, **kwargs: Any) -> dict[str, Any]:
    """The paper's TFD protocol: for each fold (a dict with 'samples', 'valid',
    'test'), choose σ on that fold's validation set and score its test set;
    report the mean over folds and the standard error *across folds*
    (std over fold means / √folds, ddof=0 as numpy.std)."""
    if not folds:
        raise DataError("folds: expected at least one fold")
    per_fold = [parzen_evaluate(f["test"], f["samples"], valid=f["valid"], sigmas=sigmas, **kwargs) for f in folds]
    means = np.array([r["mean"] for r in per_fold])
    return {
        "mean": float(means.mean()),
        "se": float(means.std() / math.sqrt(len(means))),
        "folds": per_fold,
        "sigma": float(np.median([r["sigma"] for r in per_fold])),
        "n": int(sum(r["n"] for r in per_fold)),
        "m": per_fold[0]["m"],
        "d": per_fold[0]["d"],
    }


def reference_protocol(
    samples: Any,
    dataset: Any,
    *,
    valid_size: int = REFERENCE_VALID_SIZE,
    split: str = "test",
    sigmas: Any = DEFAULT_SIGMAS,
    label: str = "model",
    baselines: bool = False,
    seed: int = 0,
    progress: bool = False,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """The reference protocol (paper §5 and Table 1) on an :class:`advnets.data.Dataset`.

    σ is chosen from ``sigmas`` on the first ``valid_size`` validation images
    (MNIST's split: train images 50,000-50,999; all of them when fewer) and the
    ``split`` images are scored under ``samples`` (M x d or image-shaped, e.g.
    10,000 samples of G). With ``baselines`` the same protocol also scores
    :func:`baseline_samples` of the training split (as many as ``samples``,
    built with ``seed``, cached in ``cache_dir``), with a progress bar when ``progress``.

    Returns ``{label: row, <baseline name>: row, ...}``; each row is
    :func:`parzen_evaluate`'s dict plus ``n_valid``. ``kwargs`` go to
    :func:`parzen_evaluate` (``dtype``, ``device``, ...). Raises
    :class:`DataError` for an unknown split or mismatched dimensions.
    """
    valid, test = dataset.valid[:valid_size], dataset.split(split)
    kw = {**kwargs, "progress": progress}
    rows = {label: {**parzen_evaluate(test, samples, valid=valid, sigmas=sigmas, **kw), "n_valid": len(valid)}}
    if baselines:
        rows.update(
            baseline_rows(
                dataset,
                len(samples),
                valid_size=valid_size,
                split=split,
                sigmas=sigmas,
                seed=seed,
                cache_dir=cache_dir,
                **kw,
            )
        )
    return rows


def baseline_rows(
    dataset: Any,
    m: int = REFERENCE_NUM_SAMPLES,
    *,
    valid_size: int = REFERENCE_VALID_SIZE,
    split: str = "test",
    sigmas: Any = DEFAULT_SIGMAS,
    seed: int = 0,
    progress: bool = False,
    cache_dir: str | Path | None = None,
    note: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """:func:`baseline_samples` of the training split (m of each; cached in ``cache_dir``, ``note`` told
    of a fit), scored by :func:`reference_protocol`'s protocol, with a progress bar over the fits and the
    three scorings when ``progress``."""
    from tqdm.auto import tqdm

    valid, test = dataset.valid[:valid_size], dataset.split(split)
    rows = {}
    with tqdm(total=4, desc="baselines", unit="step", disable=not progress) as bar:
        bar.set_postfix_str("k-means and a Gaussian")
        fakes = baseline_samples(dataset.train, m, seed, cache_dir=cache_dir, note=note)
        bar.update()
        for name, fake in fakes.items():
            bar.set_postfix_str(name)
            row = parzen_evaluate(
                test, fake, valid=valid, sigmas=sigmas, check_range=False, progress=progress, **kwargs
            )
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


def tfd_fold_sets(
    data_cfg: Any, folds: int, samples: torch.Tensor, split: str, valid_size: int, data_dir: Any = None
) -> list[dict[str, Any]]:
    """The inputs of :func:`evaluate_folds` for TFD folds 0..``folds``-1: the same ``samples`` of G,
    each fold's first ``valid_size`` validation images (to choose σ) and its ``split`` to score.

    Raises:
        AdvnetsError: ``data_cfg`` is not a TFD source (only TFD has folds).
    """
    from advnets.config import override
    from advnets.data import load_dataset

    if not data_cfg.source.startswith("tfd"):
        raise AdvnetsError(f"--folds: only TFD has folds; this run was trained on {data_cfg.source!r}")
    sets = []
    for k in range(folds):
        fold_data = load_dataset(override(data_cfg, fold=k), data_dir=data_dir)
        sets.append({"samples": samples, "valid": fold_data.valid[:valid_size], "test": fold_data.split(split)})
    return sets


def evaluate_run(
    run: Any,
    *,
    num_samples: int = 10000,
    valid_size: int = 1000,
    split: str = "test",
    seed: int = 0,
    sigmas: Any = DEFAULT_SIGMAS,
    folds: int | None = None,
    baselines: bool = False,
    data_dir: Any = None,
    note: Callable[[str], None] | None = None,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The paper's Table 1 protocol for the generator of a run (its latest checkpoint) or a checkpoint
    file: ``num_samples`` samples of G (noise seed ``seed``) in a Parzen window, σ chosen on the first
    ``valid_size`` validation images, the ``split`` images scored; with ``folds``, TFD's protocol
    over folds 0..folds-1 (σ per fold, SE across folds); with ``baselines``, rows for the
    :func:`baseline_samples` scored the same way. Keyword arguments go to ``parzen_evaluate``.

    Returns ``{"rows": {label: parzen result}, "label": the model's row, "dataset", "step",
    "valid_size": the validation images used}``; ``note`` is called
    with a message when the dataset has fewer than ``valid_size`` validation images.
    """
    from advnets.checkpoint import load_models
    from advnets.data import load_dataset
    from advnets.sampling import generate

    g, _, cfg, state = load_models(run)
    data = load_dataset(cfg.data, data_dir=data_dir)
    valid = data.valid[:valid_size]
    if len(valid) < valid_size and note is not None:
        note(f"{data.name} has {len(valid)} validation images; sigma is chosen on all of them")
    step, dataset_name = state["step"], data.name
    samples = generate(g, num_samples, seed, tuple(state["image_shape"]))
    rows: dict[str, dict[str, Any]] = {}
    if folds is not None:
        # The paper's TFD protocol: sigma chosen on each fold's validation
        # set, that fold's test set scored, the SE taken across folds.
        sets = tfd_fold_sets(cfg.data, folds, samples, split, valid_size, data_dir)
        label, dataset_name = f"adversarial nets (step {step}, {folds} folds)", "tfd"
        rows[label] = evaluate_folds(sets, sigmas=sigmas, **kwargs)
    else:
        label = f"adversarial nets (step {step})"
        rows[label] = parzen_evaluate(data.split(split), samples, valid=valid, sigmas=sigmas, **kwargs)
    if baselines:
        for name, row in baseline_rows(
            data,
            num_samples,
            valid_size=valid_size,
            split=split,
            sigmas=sigmas,
            seed=seed,
            cache_dir=cache_dir,
            note=note,
            **kwargs,
        ).items():
            rows[name] = {k: v for k, v in row.items() if k != "n_valid"}
    return {"rows": rows, "label": label, "dataset": dataset_name, "step": step, "valid_size": len(valid)}


def parzen_record(
    result: dict[str, Any], *, num_samples: int, split: str, seed: int, sigmas: Any, dtype: torch.dtype
) -> dict[str, Any]:
    """The JSON document of an evaluation (``RUN/parzen.json``): the protocol's settings, the
    dataset, the step and every row of ``result`` (from :func:`evaluate_run`, or built alike)."""
    return {
        "protocol": {
            "num_samples": num_samples,
            "valid_size": result["valid_size"],
            "split": split,
            "seed": seed,
            "sigmas": [float(x) for x in sigmas],
            "dtype": "float32" if dtype == torch.float32 else "float64",
            "se": "std/sqrt(N), population std (ddof=0) as numpy.std in the reference code",
        },
        "dataset": result["dataset"],
        "step": result["step"],
        "rows": result["rows"],
    }


def memorization_check(g: Any, train: Any, test: Any, seed: int, image_shape: tuple[int, ...], size: int) -> dict:
    """Figure 2's memorisation check of a generator: ``memorization_stats`` of ``min(size, len(test))``
    samples of ``g`` (noise seed ``seed + 1``, so that they are not the figure's own samples) and as many
    held-out ``test`` images, against the ``train`` images (advnets.evaluate.nearest)."""
    from advnets.evaluate.nearest import memorization_stats
    from advnets.sampling import generate

    heldout = test[:size]
    return memorization_stats(generate(g, len(heldout), seed + 1, image_shape), train, heldout)
