"""Scoring a trained generator end to end: load it, sample it, run the reference protocol, compare.

:func:`score` is the one entry: a run, a checkpoint, a shipped model or an array of samples
(:class:`ScoreRequest`), by Parzen's reference protocol (Table 1) or by today's metrics. It calls the
functions below, which a notebook may also call directly.
:func:`evaluate_run` scores a run or a checkpoint, :func:`evaluate_pretrained` a shipped model beside
the number its registry entry states, :func:`evaluate_samples` any model's samples; all three run the
reference protocol's code, and the first two load through :func:`advnets.generators.load_generator`.
:func:`quality_table` puts today's metrics (FD, KID, precision/recall, ...) beside the honest context
rows, for any images: a generator's samples (:meth:`~advnets.generators.LoadedGenerator.sample`) or a
file's.
:func:`memorization_check` is Figure 2's check of a generator against its training images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from advnets.devices import resolve_device
from advnets.errors import AdvnetsError, DataError
from advnets.evaluate.baselines import baseline_rows
from advnets.evaluate.inputs import as_rows
from advnets.evaluate.nearest import memorization_stats
from advnets.evaluate.options import MetricOptions
from advnets.evaluate.parzen import DEFAULT_SIGMAS, parzen_evaluate
from advnets.evaluate.protocol import (
    REFERENCE_NUM_SAMPLES,
    REFERENCE_VALID_SIZE,
    evaluate_folds,
    parzen_record,
    protocol_settings,
    reference_protocol,
    tfd_fold_sets,
)
from advnets.generators import LoadedGenerator, load_generator
from advnets.pretrained import PretrainedModel, get_entry

__all__ = [
    "ScoreRequest",
    "evaluate_pretrained",
    "evaluate_run",
    "evaluate_samples",
    "memorization_check",
    "quality_table",
    "score",
]


def evaluate_run(
    run: Any,
    *,
    num_samples: int = REFERENCE_NUM_SAMPLES,
    valid_size: int = REFERENCE_VALID_SIZE,
    split: str = "test",
    seed: int = 0,
    sigmas: Any = DEFAULT_SIGMAS,
    folds: int | None = None,
    baselines: bool = False,
    data_dir: Any = None,
    note: Callable[[str], None] | None = None,
    cache_dir: str | Path | None = None,
    options: MetricOptions = MetricOptions(),
) -> dict[str, Any]:
    """The paper's Table 1 protocol for a run (its latest checkpoint), a checkpoint file or a
    :class:`~advnets.generators.LoadedGenerator`: ``num_samples`` samples of G (noise seed ``seed``)
    in a Parzen window, σ chosen on the first ``valid_size`` validation images, the ``split`` images
    scored; with ``folds``, TFD's protocol over folds 0..folds-1 (σ per fold, SE across folds); with
    ``baselines``, rows for :func:`advnets.evaluate.baselines.baseline_samples` scored the same way.

    Returns ``{"rows": {label: parzen result}, "label": the model's row, "dataset", "step",
    "valid_size": the validation images used}``; ``note`` is called with a message when the dataset
    has fewer than ``valid_size`` validation images.

    Raises:
        CheckpointError: ``run`` cannot be loaded (see :func:`advnets.generators.load_generator`).
        DataError: the run's data cannot be read, or a bad split or σ grid.
    """
    model = run if isinstance(run, LoadedGenerator) else load_generator(run)
    data = model.load_data(data_dir=data_dir)
    valid = data.valid[:valid_size]
    if len(valid) < valid_size and note is not None:
        note(f"{data.name} has {len(valid)} validation images; sigma is chosen on all of them")
    samples = model.sample(num_samples, seed)
    label, dataset_name = model.label, data.name
    rows: dict[str, dict[str, Any]] = {}
    if folds is not None:
        # The paper's TFD protocol: sigma chosen on each fold's validation
        # set, that fold's test set scored, the SE taken across folds.
        sets = tfd_fold_sets(model.config.data, folds, samples, split, valid_size, data_dir)
        label, dataset_name = f"{model.label.removesuffix(')')}, {folds} folds)", "tfd"
        rows[label] = evaluate_folds(sets, sigmas=sigmas, options=options)
    else:
        rows[label] = parzen_evaluate(data.split(split), samples, valid=valid, sigmas=sigmas, **options.kwargs())
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
            options=options,
        ).items():
            rows[name] = {k: v for k, v in row.items() if k != "n_valid"}
    return {"rows": rows, "label": label, "dataset": dataset_name, "step": model.step, "valid_size": len(valid)}


def evaluate_pretrained(
    name: str,
    data: str | Path,
    *,
    data_dir: str | Path | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    valid_size: int | None = None,
    sigmas: Any = DEFAULT_SIGMAS,
    baselines: bool = False,
    options: MetricOptions = MetricOptions(),
    registry: dict[str, PretrainedModel] | None = None,
    assets_dir: Path | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The reference Parzen protocol on a shipped model (``advnets evaluate --pretrained NAME --data DIR``).

    ``data`` is a ``--data`` source (for MNIST, the directory of the four IDX
    files); the samples are ``num_samples`` draws of G with ``sample_seed`` and
    σ is chosen on ``valid_size`` validation images, all defaulting to the
    entry's, so the shipped number is reproduced on any machine with the same
    files. Returns ``{"model", "file", "rows", "result", "expected",
    "difference", "differs_from_stated", "protocol"}``: ``rows`` as
    :func:`advnets.evaluate.protocol.reference_protocol` (the model's row is
    ``result``; with ``baselines`` also real images, k-means, Gaussian, cached in ``cache_dir``),
    ``expected`` the registry's ``{"mean", "se", "sigma"}`` and ``difference``
    the measured minus the shipped mean (nats), ``differs_from_stated`` what of the protocol differs from
    the entry's (empty: ``difference`` is a reproduction check), ``protocol``
    :func:`advnets.evaluate.protocol.protocol_settings` and the dataset's name.

    Raises:
        AdvnetsError: an unknown name. CheckpointError: a missing or damaged file.
        DataError: the data's images do not have the model's shape.
    """
    entry = get_entry(name, registry)
    model = load_generator(pretrained=name, registry=registry, assets_dir=assets_dir)
    dataset = model.load_data(data, data_dir)
    m = entry.num_samples if num_samples is None else num_samples
    s = entry.sample_seed if seed is None else seed
    nv = entry.valid_size if valid_size is None else valid_size
    rows = reference_protocol(
        model.sample(m, s),
        dataset,
        valid_size=nv,
        sigmas=sigmas,
        label=name,
        baselines=baselines,
        seed=s,
        cache_dir=cache_dir,
        options=options,
    )
    result = rows[name]
    settings = protocol_settings(num_samples=m, seed=s, sigmas=sigmas, valid_size=result["n_valid"], options=options)
    return {
        "model": name,
        "file": str(model.source),
        "rows": rows,
        "result": result,
        "expected": {"mean": entry.parzen_ll, "se": entry.parzen_se, "sigma": entry.sigma},
        "difference": result["mean"] - entry.parzen_ll,
        "differs_from_stated": _protocol_differences(entry, dataset.name, m, s, result["n_valid"], sigmas),
        "protocol": {**settings, "dataset": dataset.name},
    }


def _protocol_differences(
    entry: PretrainedModel, dataset: str, num_samples: int, seed: int, valid_size: int, sigmas: Any
) -> list[str]:
    """The settings of an evaluation that are not the entry's: each makes its number incomparable."""
    found = []
    if dataset.startswith("embedded") and dataset != entry.dataset:  # a subset shipped for tests and demos
        found.append(f"dataset {dataset} (stated: {entry.dataset})")
    for what, got, stated in (
        ("samples", num_samples, entry.num_samples),
        ("seed", seed, entry.sample_seed),
        ("validation images", valid_size, entry.valid_size),
    ):
        if got != stated:
            found.append(f"{what} {got} (stated: {stated})")
    if not np.array_equal(np.atleast_1d(np.asarray(sigmas, dtype=float)), np.asarray(DEFAULT_SIGMAS, dtype=float)):
        found.append("sigma grid (stated: logspace(-1, 0, 10))")
    return found


def memorization_check(model: LoadedGenerator, train: Any, test: Any, seed: int, size: int) -> dict[str, Any]:
    """Figure 2's memorisation check of a generator: :func:`advnets.evaluate.nearest.memorization_stats` of
    ``min(size, len(test))`` samples of ``model`` and as many held-out ``test`` images, against the ``train``
    images. The samples are drawn with Figure 2's own noise seed ``seed``, so that a figure and its check are
    named by one seed (`advnets sample --nearest --seed S` and the report print that one)."""
    heldout = test[:size]
    return memorization_stats(model.sample(len(heldout), seed), train, heldout)


def evaluate_samples(
    samples: Any, test: Any, valid: Any, *, sigmas: Any = DEFAULT_SIGMAS, options: MetricOptions = MetricOptions()
) -> dict[str, Any]:
    """The reference protocol on any model's samples (``N x d`` or image-shaped arrays): σ chosen on
    ``valid``, ``test`` scored; the same result shape as :func:`evaluate_run` (label ``"samples"``).

    Raises:
        DataError: the three arrays do not have the same number of values per image.
    """
    s, t, v = (as_rows(a, name) for a, name in ((samples, "samples"), (test, "test"), (valid, "valid")))
    for name, array in (("valid", v), ("test", t)):
        if array.shape[1] != s.shape[1]:
            raise DataError(f"{name}: {array.shape[1]} values per image, but the samples have {s.shape[1]}")
    rows = {"samples": parzen_evaluate(t, s, valid=v, sigmas=sigmas, **options.kwargs())}
    return {"rows": rows, "label": "samples", "dataset": None, "step": None, "valid_size": len(v)}


def quality_table(
    images: Any,
    test: Any,
    metrics: Any,
    *,
    label: str = "model",
    valid: Any = None,
    train: Any = None,
    context: bool = True,
    features: Any = None,
    num_samples: int | None = None,
    seed: int = 0,
    sigmas: Any = DEFAULT_SIGMAS,
    cache_dir: str | Path | None = None,
    feature_cache: str | Path | None = None,
    note: Callable[[str], None] | None = None,
    options: MetricOptions = MetricOptions(),
) -> dict[str, Any]:
    """Today's sample-quality metrics (:mod:`advnets.evaluate.metrics`) of ``images`` against ``test``, beside
    the honest context rows built from ``train`` (real training images, k-means centroids, a Gaussian fit;
    :func:`advnets.evaluate.baselines.context_samples`, cached in ``cache_dir``) at the model's N.

    Args:
        images: the model's samples, ``N x C x H x W`` in [0, 1].
        test: the real images to compare with; ``valid``: where Parzen chooses σ (needed for ``parzen``).
        metrics: names or ``"all"`` (:func:`advnets.evaluate.metrics.parse_metrics`).
        train: the training split for the context rows (None, or ``context=False``: no context rows).
        features: the feature network (:func:`advnets.evaluate.features.get_extractor`); ``feature_cache`` keeps
            the real set's features between calls.

    Returns:
        ``{"metrics", "features", "num_samples", "seed", "model", "rows": {label: row, context label: row}}``.

    Raises:
        AdvnetsError: ``parzen`` without validation images; DataError / ConfigError for bad images or names.
    """
    from advnets.errors import AdvnetsError
    from advnets.evaluate.baselines import context_samples
    from advnets.evaluate.metrics import evaluate_table, parse_metrics

    names = parse_metrics(metrics)
    per_metric = {}
    if "parzen" in names:
        if valid is None:
            raise AdvnetsError("--metrics parzen with --samples needs --valid V.npy (to choose sigma) or --data")
        # The Gaussian fit is not clipped to [0, 1]; its out-of-range warning would be noise beside a model.
        per_metric["parzen"] = {"valid": valid, "sigmas": sigmas, "progress": False, "check_range": train is None}
    rows = {label: images}
    # Every row at the model's N (metrics such as FD are biased by N: compare them only at equal N).
    n = len(images) if num_samples is None else min(num_samples, len(images))
    if train is not None and context:
        rows.update(context_samples(train, n, seed, cache_dir=cache_dir, note=note))
    table = evaluate_table(
        test,
        rows,
        names,
        features=features,
        num_samples=n,
        seed=seed,
        cache_dir=feature_cache,
        device=resolve_device(options.device),
        options=per_metric,
    )
    return {
        "metrics": list(names),
        "features": table[label]["features"],
        "num_samples": n,
        "seed": seed,
        "model": label,
        "rows": table,
    }


@dataclass(frozen=True)
class ScoreRequest:
    """What to score and how: exactly one of ``run`` (a run directory or a checkpoint file), ``pretrained`` (a
    shipped model's name, advnets.pretrained) or ``samples`` (an array, ``N x d`` or ``N x [C x] H x W`` in [0, 1]).

    ``metrics`` None scores by the paper's Parzen protocol (Table 1: σ chosen on ``valid_size`` validation
    images, the ``split`` images scored; with ``folds``, TFD's folds; with ``baselines``, reference rows); names
    or "all" give today's metrics table (FD, KID, precision/recall, ...; advnets.evaluate.metrics) beside the
    context rows (``context``) on the ``features`` network. ``data``: the dataset a shipped model or ``samples``
    is scored against (a run scores against its own); ``test``/``valid``: real arrays beside ``samples`` when
    there is no dataset. None for ``num_samples``, ``seed``, ``valid_size`` means the reference protocol's
    (10,000 samples, seed 0, 1,000 validation images), or for a shipped model the settings its stated number
    was measured with."""

    run: str | Path | None = None
    pretrained: str | None = None
    samples: Any = None
    metrics: Any = None
    data: str | Path | None = None
    data_dir: str | Path | None = None
    test: Any = None
    valid: Any = None
    num_samples: int | None = None
    seed: int | None = None
    valid_size: int | None = None
    split: str = "test"
    folds: int | None = None
    baselines: bool = False
    sigmas: Any = None  # Parzen's σ grid (None: advnets.evaluate.parzen.DEFAULT_SIGMAS)
    context: bool = True
    features: Any = None


def score(
    request: ScoreRequest, options: MetricOptions = MetricOptions(), note: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Score what ``request`` names; what ``advnets evaluate`` prints and writes.

    Returns the result of the function that scored it with ``"kind"`` added: "parzen" (:func:`evaluate_run`'s
    or :func:`evaluate_samples`' shape, with ``"run_dir"`` and ``"record"``, the JSON document of
    :func:`advnets.evaluate.protocol.parzen_record`), "pretrained" (:func:`evaluate_pretrained`'s) or
    "quality" (:func:`quality_table`'s, with ``"step"``, ``"dataset"`` and ``"run_dir"``). ``note`` receives
    one-line notes for the user (fewer validation images than asked, a cache being built).

    Raises:
        AdvnetsError: not exactly one of run / pretrained / samples, or a missing dataset or real images.
        CheckpointError, DataError, ConfigError: from loading the generator or the data, or bad names.
    """
    from advnets.data.fetch import data_root

    r = request
    if r.sigmas is None:
        r = replace(r, sigmas=DEFAULT_SIGMAS)
    given = [name for name in ("run", "pretrained", "samples") if getattr(r, name) is not None]
    if len(given) != 1:
        raise AdvnetsError(f"score one of run, pretrained or samples; got {' and '.join(given) or 'none'}")
    root = data_root(r.data_dir)
    cache_dir = root / "baselines"  # k-means centroids and Gaussian draws, kept between calls
    if r.metrics is not None:
        return {"kind": "quality", **_quality(r, options, note, cache_dir, feature_cache=root / "features")}
    if r.pretrained is not None:
        if r.data is None:
            raise AdvnetsError("a shipped model is scored against a dataset: give data (e.g. the MNIST IDX dir)")
        result = evaluate_pretrained(
            r.pretrained,
            r.data,
            data_dir=r.data_dir,
            num_samples=r.num_samples,
            seed=r.seed,
            valid_size=r.valid_size,
            sigmas=r.sigmas,
            baselines=r.baselines,
            cache_dir=cache_dir,
            options=options,
        )
        return {"kind": "pretrained", **result}
    if r.samples is not None:
        result = evaluate_samples(r.samples, r.test, r.valid, sigmas=r.sigmas, options=options)
        num_samples, seed, run_dir = len(r.samples), None, None  # samples given: no noise seed of ours
    else:
        from advnets.runs import run_dir_of

        num_samples, seed, run_dir = _or(r.num_samples, REFERENCE_NUM_SAMPLES), _or(r.seed, 0), run_dir_of(r.run)
        result = evaluate_run(
            r.run,
            num_samples=num_samples,
            valid_size=_or(r.valid_size, REFERENCE_VALID_SIZE),
            split=r.split,
            seed=seed,
            sigmas=r.sigmas,
            folds=r.folds,
            baselines=r.baselines,
            data_dir=r.data_dir,
            note=note,
            cache_dir=cache_dir,
            options=options,
        )
    record = parzen_record(result, num_samples=num_samples, split=r.split, seed=seed, sigmas=r.sigmas, options=options)
    return {"kind": "parzen", **result, "run_dir": run_dir, "record": record}


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _quality(r: ScoreRequest, options: MetricOptions, note, cache_dir: Path, feature_cache: Path) -> dict[str, Any]:
    """:func:`quality_table` of the request's images against its real images, with where they came from."""
    num_samples, seed = _or(r.num_samples, REFERENCE_NUM_SAMPLES), _or(r.seed, 0)
    step, run_dir, dataset = None, None, None
    if r.samples is not None:
        label, images = "samples", r.samples
        if r.data is not None:
            from advnets.config import DataConfig
            from advnets.data import load_dataset

            dataset = load_dataset(DataConfig(source=str(r.data)), data_dir=r.data_dir)
    else:
        if r.pretrained is not None and r.data is None:
            raise AdvnetsError("a shipped model is scored against a dataset: give data (e.g. the MNIST IDX dir)")
        model = load_generator(pretrained=r.pretrained) if r.pretrained is not None else load_generator(r.run)
        label, images, step = model.label, model.sample(num_samples, seed), model.step
        dataset = model.load_data(r.data, r.data_dir)
        if r.run is not None:
            from advnets.runs import run_dir_of

            run_dir = run_dir_of(r.run)
    if dataset is not None:
        test, valid, train = dataset.test, dataset.valid[: _or(r.valid_size, REFERENCE_VALID_SIZE)], dataset.train
    elif r.test is None:
        raise AdvnetsError("samples scored by metrics need the real images: test (and valid for parzen), or data")
    else:
        test, valid, train = r.test, r.valid, None
    table = quality_table(
        images,
        test,
        r.metrics,
        label=label,
        valid=valid,
        train=train,
        context=r.context,
        features=r.features,
        num_samples=num_samples,
        seed=seed,
        sigmas=r.sigmas,
        cache_dir=cache_dir,
        feature_cache=feature_cache,
        note=note,
        options=options,
    )
    return {**table, "step": step, "dataset": dataset.name if dataset is not None else None, "run_dir": run_dir}
