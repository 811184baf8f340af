"""One registry of sample-quality metrics, one signature, one entry point.

Every metric is a function ``fn(real, generated, **options) -> dict`` of plain
numbers, registered by name with :func:`register`. Feature metrics take
``N×d`` feature arrays; image metrics take images (float ``N×C×H×W`` in [0, 1]):

==============  ========  ==============================================================
name            inputs    what (module)
==============  ========  ==============================================================
fd              features  Fréchet distance, FID's formula (:mod:`.frechet`)
kid             features  kernel distance, unbiased MMD² ± std over subsets (:mod:`.kid`)
precision       features  k-NN precision, Kynkäänniemi et al. 2019, k = 3 (:mod:`.manifold`)
recall          features  k-NN recall, idem
density         features  Naeem et al. 2020, k = 5 (:mod:`.manifold`)
coverage        features  idem
parzen          images    the paper's Parzen-window log-likelihood (:mod:`.parzen`)
mnist_score     images    exp E KL(p(y|x) ‖ p(y)) of a digit classifier (:mod:`.classifier`)
class_coverage  images    classes that get at least 1/5 of an even share (:mod:`.classifier`)
==============  ========  ==============================================================

:func:`evaluate_metrics` scores one set of samples against real images: it
extracts features once per set (the real ones through a :class:`FeatureCache`)
and calls each metric function once (precision, recall, density and coverage
share one computation). :func:`evaluate_table` does the same for several rows
against one real set (the honest context rows come from
:func:`advnets.evaluate.baselines.context_samples`), and :func:`format_table`
prints the result. This module imports nothing above the metric functions
(features, the distances engine, Parzen, the classifier), so a training loop
may call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advnets.errors import ConfigError, DataError, TooFewSamples
from advnets.evaluate.features import FeatureCache, FeatureExtractor, default_extractor, get_extractor
from advnets.evaluate.frechet import frechet_distance
from advnets.evaluate.inputs import as_images
from advnets.evaluate.kid import kernel_distance
from advnets.evaluate.manifold import manifold_metrics

__all__ = [
    "DEFAULT_METRICS",
    "REGISTRY",
    "Metric",
    "evaluate_metrics",
    "evaluate_table",
    "format_table",
    "parse_metrics",
    "register",
]

DEFAULT_METRICS = ("fd", "kid", "precision", "recall", "density", "coverage")


@dataclass(frozen=True)
class Metric:
    """A registered metric: ``fn(real, generated, **options) -> dict`` and the keys of its numbers."""

    name: str
    inputs: str  # "features" or "images"
    fn: Callable[..., dict[str, Any]]
    keys: tuple[str, ...]  # the entries of fn's dict that are this metric's numbers; the first is the headline
    better: str  # "lower", "higher" or "≈1"
    description: str


REGISTRY: dict[str, Metric] = {}


def register(name: str, *, inputs: str, keys: tuple[str, ...], better: str, description: str) -> Callable:
    """Decorator: register ``fn`` under ``name`` (a name may be registered once)."""
    if inputs not in ("features", "images"):
        raise ValueError(f"inputs must be 'features' or 'images', got {inputs!r}")

    def wrap(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        if name in REGISTRY:
            raise ValueError(f"metric {name!r} is already registered")
        REGISTRY[name] = Metric(name, inputs, fn, keys, better, description)
        return fn

    return wrap


# --------------------------------------------------------------------------- the metrics

register("fd", inputs="features", keys=("fd",), better="lower", description="Fréchet distance")(frechet_distance)
register("kid", inputs="features", keys=("kid", "kid_std"), better="lower", description="kernel distance")(
    kernel_distance
)
for _name, _better, _what in (
    ("precision", "higher", "k-NN precision (k = 3)"),
    ("recall", "higher", "k-NN recall (k = 3)"),
    ("density", "≈1", "density (k = 5)"),
    ("coverage", "higher", "coverage (k = 5)"),
):
    REGISTRY[_name] = Metric(_name, "features", manifold_metrics, (_name,), _better, _what)


@register("parzen", inputs="images", keys=("parzen", "parzen_se"), better="higher", description="Parzen LL")
def parzen_metric(real_images: Any, generated_images: Any, **options: Any) -> dict[str, Any]:
    """The paper's Parzen-window log-likelihood of ``real_images`` (e.g. the test split) under a window on
    ``generated_images``, through :func:`advnets.evaluate.parzen.parzen_evaluate` (pass ``valid=`` images
    to choose σ, or ``sigma=``)."""
    from advnets.evaluate.parzen import parzen_evaluate

    r = parzen_evaluate(real_images, generated_images, **options)
    return {
        "parzen": r["mean"],
        "parzen_se": r["se"],
        "parzen_sigma": r["sigma"],
        "n_real": r["n"],
        "n_generated": r["m"],
    }


def classifier_metrics(real_images: Any, generated_images: Any, *, classifier: Any = None, **options: Any) -> dict:
    """MNIST score and class coverage of ``generated_images``
    (:func:`advnets.evaluate.classifier.class_coverage`); ``real_images`` are not used.

    The classifier defaults to the shipped digit network (99.29 % on MNIST's test
    set), so scores are comparable across machines; 8×8 digits are preprocessed
    as for its features. Pass ``classifier=`` (e.g. from
    :func:`~advnets.evaluate.classifier.load_or_train_classifier`) for other data.
    """
    from advnets.evaluate.classifier import class_coverage
    from advnets.evaluate.digit_features import load_digit_network, preprocess_digits

    if classifier is None:
        classifier, generated_images = load_digit_network(), preprocess_digits(generated_images, "generated images")
    return class_coverage(classifier, generated_images, **options)


REGISTRY["mnist_score"] = Metric(
    "mnist_score",
    "images",
    classifier_metrics,
    ("mnist_score",),
    "higher",
    "MNIST score, shipped digit network (max 10)",  # `advnets classes` uses the run's own (docs/metrics.md)
)
REGISTRY["class_coverage"] = Metric(
    "class_coverage", "images", classifier_metrics, ("classes_covered",), "higher", "classes covered"
)


def parse_metrics(spec: str | Iterable[str], option: str = "--metrics") -> tuple[str, ...]:
    """``"fd,kid"``, ``"all"`` or a sequence of names -> registered names in order, without repeats.

    Raises:
        ConfigError: an unknown name, an empty list, or ``all`` beside other names; the message names
            ``option`` (the flag the list came from).
    """
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    names = [n for n in names if n]
    if names == ["all"]:
        return tuple(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        if not names:
            what = "an empty list"
        elif unknown == ["all"]:
            what = "'all' stands alone"
        else:
            what = f"unknown {', '.join(unknown)}"
        raise ConfigError(
            f"{option} {','.join(names) or spec!r}: {what}; "
            f"expected 'all' or a comma-separated list of {', '.join(REGISTRY)}"
        )
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- evaluation


def _subset(n: int, num: int | None, seed: int) -> torch.Tensor | None:
    """Indices of a seeded random subset of ``num`` of ``n`` rows (None: all rows)."""
    if num is None or num >= n:
        return None
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ConfigError(f"--num-samples must be a positive integer, got {num!r}")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:num]


def _pick(x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    return x if idx is None else x[idx]


def _resolve_extractor(features: str | FeatureExtractor | None, image_shape: tuple, device: Any) -> FeatureExtractor:
    if isinstance(features, FeatureExtractor):
        return features
    return get_extractor(features or default_extractor(image_shape), device)


def evaluate_table(
    real_images: Any,
    rows: dict[str, Any],
    metrics: str | Iterable[str] = DEFAULT_METRICS,
    *,
    features: str | FeatureExtractor | None = None,
    num_samples: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    options: dict[str, dict[str, Any]] | None = None,
    real_features: torch.Tensor | None = None,
) -> dict[str, dict[str, Any]]:
    """Score several sets of generated images (``rows``: label -> images) against one real set.

    Args:
        real_images: the reference images (e.g. the test split), float ``N×C×H×W`` in [0, 1].
        rows: label -> generated images of the same shape.
        metrics: names (see the module table), a comma-separated string or ``"all"``.
        features: ``digits``, ``inception``, ``file:PATH`` or a :class:`FeatureExtractor`;
            default :func:`~advnets.evaluate.features.default_extractor` of the image shape.
        num_samples: use at most this many images of each set (a seeded random subset).
        seed: seeds those subsets.
        cache_dir: where real-set features are cached (None: not cached).
        device: where the feature network runs.
        options: per-metric keyword options, e.g. ``{"kid": {"subsets": 50}, "parzen": {"valid": V}}``.
        real_features: ``features``' output for all of ``real_images``, when the caller already has it (a
            training monitor scoring against one fixed validation split at every check); not recomputed.

    Returns:
        label -> flat dict: each metric's numbers (``fd``, ``kid``, ``kid_std``,
        ``precision``, ..., ``parzen``, ``parzen_se``, ``mnist_score``,
        ``classes_covered``), ``n_real``, ``n_generated``, ``features`` and
        ``details`` (each metric function's whole dict, by metric name).

    Raises:
        ConfigError: unknown metric or extractor; DataError: bad images or metric input.
    """
    names = parse_metrics(metrics)
    options = options or {}
    unknown = set(options) - set(REGISTRY)
    if unknown:
        raise ConfigError(f"options for unknown metrics {sorted(unknown)}; expected names from {list(REGISTRY)}")
    real = as_images(real_images, "real images")
    n_real_all = len(real)
    real_idx = _subset(len(real), num_samples, seed)
    need_features = any(REGISTRY[n].inputs == "features" for n in names)
    extractor = _resolve_extractor(features, tuple(real.shape[1:]), device) if need_features else None
    real_feats = None
    if extractor is not None:
        if real_features is not None and len(real_features) != len(real):
            raise DataError(f"real_features: {len(real_features)} rows for {len(real)} real images")
        all_feats = real_features if real_features is not None else FeatureCache(cache_dir).features(extractor, real)[0]
        real_feats = _pick(all_feats, real_idx)
    real = _pick(real, real_idx)

    table: dict[str, dict[str, Any]] = {}
    for label, images in rows.items():
        gen = as_images(images, f"generated images ({label})")
        if gen[0].numel() != real[0].numel():
            raise DataError(
                f"generated images ({label}) have shape {tuple(gen.shape[1:])}; the real images have "
                f"{tuple(real.shape[1:])}"
            )
        gen = _pick(gen, _subset(len(gen), num_samples, seed + 1)).reshape(-1, *real.shape[1:])
        gen_feats = extractor(gen) if extractor is not None else None
        done: dict[Callable, dict[str, Any]] = {}
        row: dict[str, Any] = {"details": {}}
        for name in names:
            m = REGISTRY[name]
            if m.fn not in done:  # once for metrics sharing a function, with all their options
                opts = {k: v for n in names if REGISTRY[n].fn is m.fn for k, v in options.get(n, {}).items()}
                a, b = (real_feats, gen_feats) if m.inputs == "features" else (real, gen)
                try:
                    done[m.fn] = m.fn(a, b, **opts)
                except TooFewSamples as e:
                    raise _too_few(e, name, label, len(gen), len(real), cut=len(real) < n_real_all) from None
            out = done[m.fn]
            row.update({k: out[k] for k in m.keys})
            row["details"][name] = out
        row.update(n_real=len(real), n_generated=len(gen), features=extractor.name if extractor else None)
        table[label] = row
    return table


def _too_few(e: TooFewSamples, metric: str, label: str, n_gen: int, n_real: int, cut: bool) -> TooFewSamples:
    """A metric's too-few-rows error, said of the set that is short. The real set is cut to ``num_samples``
    (the caller's sample count, to score every row at equal N), so when it is no larger than the generated
    row it is that row's count that is short, whichever set the metric checked first."""
    if cut and n_real <= n_gen:
        return TooFewSamples(
            f"{label}: {n_gen} samples are too few for {metric} (the real images are cut to as many, to score at "
            f"equal N): {e}"
        )
    return TooFewSamples(f"{label}: {metric}: {e}")


def evaluate_metrics(
    real_images: Any, generated_images: Any, metrics: str | Iterable[str] = DEFAULT_METRICS, **kwargs: Any
) -> dict[str, Any]:
    """Score one set of generated images against real images: :func:`evaluate_table` with one row."""
    return evaluate_table(real_images, {"generated": generated_images}, metrics, **kwargs)["generated"]


def _cell(row: dict[str, Any], name: str) -> str:
    m = REGISTRY[name]
    v = row.get(m.keys[0])
    if v is None:
        return "-"
    if name == "kid":  # no std when every subset was the whole set (advnets.evaluate.kid)
        std = row.get("kid_std")
        return f"{v:.4g} ± " + ("n/a" if std is None else f"{std:.2g}")
    if name == "parzen":
        return f"{v:.1f} ± {row['parzen_se']:.1f}"
    if name == "class_coverage":
        return str(int(v))
    return f"{v:.4g}" if name == "fd" else f"{v:.3f}"


def format_table(table: dict[str, dict[str, Any]], metrics: str | Iterable[str] | None = None) -> str:
    """A plain-text table: one line per row of :func:`evaluate_table`, one column per metric."""
    names = (
        parse_metrics(metrics)
        if metrics is not None
        else tuple(n for n in REGISTRY if any(REGISTRY[n].keys[0] in r for r in table.values()))
    )
    heads = ["classes" if n == "class_coverage" else n for n in names]
    lines = [["", *heads], ["(better)", *(REGISTRY[n].better for n in names)]]
    lines += [[label, *(_cell(row, n) for n in names)] for label, row in table.items()]
    width = [max(len(line[i]) for line in lines) for i in range(len(names) + 1)]

    def join(cells: list[str]) -> str:  # labels left-aligned, numbers right-aligned
        return "  ".join([cells[0].ljust(width[0])] + [c.rjust(w) for c, w in zip(cells[1:], width[1:], strict=True)])

    return "\n".join(join(line) for line in lines)
