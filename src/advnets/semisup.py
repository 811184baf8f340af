"""Semi-supervised learning with D's features (paper §7, item 4).

"Features from the discriminator or inference net could improve performance
of classifiers when limited labeled data is available." The protocol here:

- **features**: D's hidden layers, frozen, in eval mode (no dropout): the
  maxout outputs of every fully connected hidden layer, concatenated (2 x 240 =
  480 numbers per image for the mnist preset; a conv D's conv-maxout maps are
  not included). Optionally the encoder of :mod:`advnets.infer` (its hidden
  ReLU activations and its code z = E(x), concatenated).
- **labelled set**: n training examples drawn *balanced* by class, n // K per
  class and the n % K left over given to randomly chosen classes (so counts
  differ by at most one), without replacement, repeated for several random
  draws. Draw i of size n is the same images for every feature set (a paired
  comparison).
- **classifier**: multinomial logistic regression (scikit-learn, L-BFGS) on
  standardised features (mean and scale from the labelled set only). Its
  inverse regularisation C is chosen from a small grid by stratified k-fold
  cross-validation *on the labelled set only* (the test split is never seen
  before the final score); with fewer than 2 examples per class, C = 1.
- **report**: test accuracy, mean ± sample std over draws, per n.
- **baselines** in the same table: the same classifier on raw pixels, and on
  the features of an *untrained* D of the same architecture, initialised as
  the run's D was at step 0 (same config, same seed).

:func:`run_semisup` is what ``advnets semisup`` calls; it writes RUN/semisup.json.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advnets.errors import ConfigError, DataError

_EVAL_BATCH = 1000


@dataclass(frozen=True)
class SemisupConfig:
    """The labelled-set sizes, the draws and the linear classifier (§7.4)."""

    labels: tuple[int, ...] = (100, 600, 1000)
    draws: int = 5
    seed: int = 0
    c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)  # inverse L2 strength, chosen by CV on the labelled set
    cv_folds: int = 3
    max_iter: int = 500

    def __post_init__(self) -> None:
        if not self.labels or any(int(n) < 1 for n in self.labels):
            raise ConfigError(f"--labels: expected positive integers, got {self.labels}")
        if self.draws < 1:
            raise ConfigError(f"--draws: expected a positive integer, got {self.draws}")
        if not self.c_grid or any(not c > 0 for c in self.c_grid):
            raise ConfigError(f"semisup.c_grid: expected positive numbers, got {self.c_grid}")
        if self.cv_folds < 2:
            raise ConfigError(f"semisup.cv_folds must be at least 2, got {self.cv_folds}")


def check_labels(labels: Any, split: str = "training") -> np.ndarray:
    """Labels as int64 numpy; a clear error when the dataset has none (None or -1)."""
    if labels is None:
        raise DataError(f"this dataset has no {split} labels; semi-supervised evaluation needs a labelled dataset")
    y = torch.as_tensor(labels).reshape(-1).long().cpu().numpy()
    if len(y) == 0 or (y < 0).any():
        raise DataError(
            f"this dataset has no {split} labels (or some are missing); semi-supervised evaluation needs a "
            "labelled dataset (e.g. embedded, embedded-digits, mnist, cifar10)"
        )
    return y


def balanced_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices into ``labels``, n // K per class and the n % K left over to random classes, sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    k = len(classes)
    if n > len(labels):
        raise ConfigError(f"--labels {n}: larger than the training split ({len(labels)} examples)")
    if n < k:
        raise ConfigError(f"--labels {n}: fewer than one labelled example per class ({k} classes)")
    per_class = np.full(k, n // k)
    per_class[rng.choice(k, n % k, replace=False)] += 1
    short = [(int(c), int(m), int(need)) for c, m, need in zip(classes, counts, per_class, strict=True) if need > m]
    if short:
        c, m, need = short[0]
        raise ConfigError(f"--labels {n}: class {c} has only {m} training examples, {need} needed for a balanced draw")
    picked = [
        rng.choice(np.flatnonzero(labels == c), need, replace=False) for c, need in zip(classes, per_class, strict=True)
    ]
    return np.sort(np.concatenate(picked))


# --------------------------------------------------------------------------- features


@torch.no_grad()
def discriminator_features(d: torch.nn.Module, images: torch.Tensor, batch: int = _EVAL_BATCH) -> np.ndarray:
    """D's hidden maxout outputs for each image, concatenated (N x sum(hidden_units)), D in eval mode."""
    was_training = d.training
    d.eval()  # no dropout: the features are deterministic
    device = next(d.parameters()).device
    out = []
    try:
        for i in range(0, len(images), batch):
            x = images[i : i + batch].to(device)
            h = d._features(x.reshape(len(x), *d.image_shape)) if d.conv else x.reshape(len(x), -1)
            layers = []
            for layer in d.hidden:
                h = layer(h)
                layers.append(h)
            out.append(torch.cat(layers, dim=1).cpu())
    finally:
        d.train(was_training)
    return torch.cat(out).double().numpy()


@torch.no_grad()
def encoder_features(enc: torch.nn.Module, images: torch.Tensor, batch: int = _EVAL_BATCH) -> np.ndarray:
    """The encoder's hidden ReLU activations and its code z = E(x), concatenated."""
    device = next(enc.parameters()).device
    out = [
        torch.cat(enc.hidden_features(images[i : i + batch].to(device)), dim=1).cpu()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out).double().numpy()


def pixel_features(images: torch.Tensor) -> np.ndarray:
    return images.reshape(len(images), -1).double().numpy()


# --------------------------------------------------------------------------- classifier


def fit_linear(x: np.ndarray, y: np.ndarray, cfg: SemisupConfig = SemisupConfig()):
    """Standardise + multinomial logistic regression, C chosen by stratified k-fold CV on (x, y) only.
    Returns the fitted pipeline and the chosen C."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=cfg.max_iter))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        folds = min(cfg.cv_folds, int(np.unique(y, return_counts=True)[1].min()))
        if folds < 2 or len(cfg.c_grid) == 1:
            best = cfg.c_grid[0] if len(cfg.c_grid) == 1 else 1.0
        else:
            cv = StratifiedKFold(folds, shuffle=True, random_state=0)
            scores = []
            for c in cfg.c_grid:
                acc = [model(c).fit(x[tr], y[tr]).score(x[va], y[va]) for tr, va in cv.split(x, y)]
                scores.append(float(np.mean(acc)))
            best = cfg.c_grid[int(np.argmax(scores))]  # ties: the first (strongest regularisation) in the grid
        return model(best).fit(x, y), float(best)


def evaluate_features(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    cfg: SemisupConfig = SemisupConfig(),
    draws: dict[int, list[np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Test accuracy of the linear classifier on each labelled-set size of ``cfg.labels``, over draws."""
    draws = draws or labelled_draws(train_y, cfg)
    out: dict[str, Any] = {"dim": int(train_x.shape[1])}
    for n in cfg.labels:
        accs, cs = [], []
        for idx in draws[n]:
            clf, c = fit_linear(train_x[idx], train_y[idx], cfg)
            accs.append(float(clf.score(test_x, test_y)))
            cs.append(c)
        out[str(n)] = {
            "accuracies": accs,
            "mean": float(np.mean(accs)),
            "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "C": cs,
        }
    return out


def labelled_draws(train_y: np.ndarray, cfg: SemisupConfig) -> dict[int, list[np.ndarray]]:
    """The balanced labelled sets, cfg.draws of each size: draw i of size n comes from seed (seed, n, i)."""
    return {
        n: [balanced_indices(train_y, n, np.random.default_rng([cfg.seed, n, i])) for i in range(cfg.draws)]
        for n in cfg.labels
    }


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table: one row per feature set, one column per labelled-set size."""
    labels = result["config"]["labels"]
    k = result.get("classes")
    head = "| features | dim | " + " | ".join(f"{n} labels" for n in labels) + " |"
    rule = "|---|---:|" + "---:|" * len(labels)
    lines = [head, rule]
    for name, row in result["rows"].items():
        cells = [f"{100 * row[str(n)]['mean']:.1f} ± {100 * row[str(n)]['std']:.1f}" for n in labels]
        lines.append(f"| {name} | {row['dim']} | " + " | ".join(cells) + " |")
    draws = result["config"]["draws"]
    lines.append("")
    lines.append(
        f"Test accuracy (%) of a linear classifier (multinomial logistic regression on standardised features), "
        f"mean ± std over {draws} balanced draws of the labelled set"
        + (f" ({k} classes; chance {100 / k:.1f} %)" if k else "")
        + f"; {result['test_size']} test images."
    )
    return "\n".join(lines)


def plot_semisup(result: dict[str, Any], path: Path) -> Path:
    """Test accuracy against the number of labelled examples, one line per feature set
    (mean, with ±1 std over the draws as error bars), written atomically as a PNG."""
    from advnets.figures import new_figure, save_figure

    labels = result["config"]["labels"]
    fig = new_figure(6.4, 4.0, layout="constrained")
    ax = fig.add_subplot()
    for name, row in result["rows"].items():
        means = [100 * row[str(n)]["mean"] for n in labels]
        stds = [100 * row[str(n)]["std"] for n in labels]
        ax.errorbar(labels, means, yerr=stds, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks(labels, [str(n) for n in labels])
    ax.set_xlabel("labelled training examples (balanced by class)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{result['dataset']}: a linear classifier on frozen features (step {result['step']})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def run_semisup(
    run: Path,
    cfg: SemisupConfig = SemisupConfig(),
    *,
    with_encoder: bool = False,
    data_dir: Path | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """``advnets semisup``: the table of §7.4 for a run's latest checkpoint; writes RUN/semisup.json
    (or ``out``) and the figure beside it (the same name, .png), and returns the result."""
    from advnets.generators import load_generator
    from advnets.io import atomic_write_json
    from advnets.runs import run_dir_of

    run = Path(run)
    run_dir = run_dir_of(run)
    model = load_generator(run)
    ckpt = model.source
    encoder = _run_encoder(run_dir, ckpt.name) if with_encoder else None
    data = model.load_data(data_dir=data_dir)
    train_y = check_labels(data.train_labels, "training")
    test_y = check_labels(data.test_labels, "test")
    draws = labelled_draws(train_y, cfg)  # checks every size before any work

    feature_sets = _feature_sets(model, encoder)
    # Only the training images of some labelled set need features (a few thousand, even on full MNIST).
    used = np.unique(np.concatenate([idx for sets in draws.values() for idx in sets]))
    local = {n: [np.searchsorted(used, idx) for idx in sets] for n, sets in draws.items()}
    labelled_images, labelled_y = data.train[torch.from_numpy(used)], train_y[used]
    rows, seconds = {}, {}
    for name, features in feature_sets.items():
        start = time.perf_counter()
        rows[name] = evaluate_features(features(labelled_images), labelled_y, features(data.test), test_y, cfg, local)
        seconds[name] = round(time.perf_counter() - start, 2)
    result = {
        "checkpoint": ckpt.name,
        "step": model.step,
        "dataset": data.name,
        "classes": int(len(np.unique(train_y))),
        "train_size": len(train_y),
        "test_size": len(test_y),
        "config": asdict(cfg),
        "classifier": "StandardScaler + LogisticRegression (multinomial, L-BFGS); C by stratified CV on the "
        "labelled set only",
        "rows": rows,
        "seconds": seconds,
    }
    path = Path(out) if out is not None else run_dir / "semisup.json"
    atomic_write_json(path, result)
    result["json"] = str(path)
    result["figure"] = str(plot_semisup(result, path.with_suffix(".png")))
    return result


def _run_encoder(run_dir: Path, checkpoint: str) -> Any:
    """``--with-encoder``: the run's encoder (advnets infer), warning when it was trained for another checkpoint.

    Raises:
        CheckpointError: the run has no encoder.
    """
    from advnets.errors import CheckpointError
    from advnets.infer import ENCODER_META, load_encoder

    if not (run_dir / ENCODER_META).is_file():
        raise CheckpointError(
            f"--with-encoder: {run_dir} has no encoder ({ENCODER_META}); run `advnets infer --run {run_dir}` first"
        )
    encoder, enc_meta = load_encoder(run_dir)
    if enc_meta.get("checkpoint") != checkpoint:
        warnings.warn(
            f"the encoder in {run_dir} was trained for {enc_meta.get('checkpoint')}, not {checkpoint}; "
            "rerun `advnets infer` to match",
            stacklevel=3,  # at run_semisup's caller
        )
    return encoder


def _feature_sets(model: Any, encoder: Any) -> dict[str, Callable[[torch.Tensor], np.ndarray]]:
    """The table's rows: raw pixels, D untrained, D trained, and the encoder's features when given."""
    from advnets.nets import build_nets

    d, run_cfg = model.discriminator, model.config
    # The untrained baseline: D initialised exactly as the run's trainer did at step 0.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run_cfg.train.seed)
        _, d0 = build_nets(run_cfg.generator, run_cfg.discriminator, model.image_shape)
    feature_sets = {
        "raw pixels": pixel_features,
        "untrained D (same architecture and seed)": lambda x: discriminator_features(d0, x),
        f"trained D (step {model.step})": lambda x: discriminator_features(d, x),
    }
    if encoder is not None:
        feature_sets["encoder E (hidden layers and z)"] = lambda x: encoder_features(encoder, x)
    return feature_sets
