"""Typed, frozen run configuration: the dataclasses, their checks and their JSON form.

A run is described by one :class:`RunConfig` composed of frozen dataclasses.
``config.json`` in a run directory holds ``to_dict(config)`` (plus the
dataset's name, image shape and split sizes, and a record of resumes), and
``from_dict`` rebuilds a config from such a dict, rejecting unknown keys and wrong types (a typo in a
config must be an error, never a silent default).

The defaults are the paper's MNIST model; advnets.presets holds the presets (the published hyperparameters of
the reference code) and the options of ``advnets train`` that change them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from advnets.errors import ConfigError

NOISE_PRIORS = ("uniform", "normal")
HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear")
G_LOSSES = ("nonsaturating", "minimax")
UPDATES = ("alternating", "simultaneous")
OPTIMIZERS = ("sgd", "adam")
ON_COLLAPSE = ("warn", "stop")
CONDITIONS = ("none", "class", "inpaint")
PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")
PREPROCESSING = ("none", "gcn")
CONDITIONAL_CLASSES = 10  # `advnets train --conditional`: the digit datasets' classes
# Seeds reach torch, NumPy and scikit-learn (the k-means baseline), and some are offset (seed + 1, ...):
# below 2**31 every one of them accepts them.
SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class ConvMaxoutConfig:
    """One convolutional maxout layer of D: a convolution to channels x pieces
    feature maps, the max over each channel's pieces, then max-pooling."""

    channels: int
    pieces: int
    kernel: int
    padding: int
    pool: int
    pool_stride: int


@dataclass(frozen=True)
class GeneratorConfig:
    """An MLP generator G(z): noise enters only the bottom layer (paper §3)."""

    noise_dim: int = 100
    # Conditional nets (paper §7.1 and §7.3): "class" appends a
    # one-hot label of cond_dim classes to z; "inpaint" appends the visible
    # pixels and the mask (cond_dim = 2 x pixels); "none": the paper's nets.
    condition: str = "none"
    cond_dim: int = 0
    # "uniform" is U[-sqrt(3), sqrt(3)] per dimension (unit variance), as in the
    # reference code; "normal" is N(0, 1).
    noise: str = "uniform"
    hidden_sizes: tuple[int, ...] = (1200, 1200)
    hidden_activations: tuple[str, ...] = ("relu", "relu")
    output_activation: str = "sigmoid"
    # Weights drawn from U(-init_range, init_range); biases start at zero.
    init_range: float = 0.05
    # The output layer's range when it differs (CIFAR-10's linear output: 0.5).
    output_init_range: float | None = None
    # Initialise the sigmoid output bias to logit(mean training pixel), clipped,
    # as the reference code's init_sigmoid_bias_from_marginals does.
    output_bias_from_data: bool = True
    # Max L2 norm of each unit's incoming weight vector (TFD uses 1.9365).
    max_col_norm: float | None = None
    # The CIFAR-10 convolutional G: the last hidden layer is reshaped to
    # deconv_shape (channels, height, width) and a transposed convolution
    # maps it to the image; None means a fully connected output layer.
    deconv_shape: tuple[int, int, int] | None = None
    deconv_kernel: int = 5
    deconv_stride: int = 3
    deconv_padding: int = 0


@dataclass(frozen=True)
class DiscriminatorConfig:
    """A maxout MLP discriminator D(x) that returns a logit (sigmoid applied in the losses)."""

    hidden_units: tuple[int, ...] = (240, 240)
    # Conditional nets: D sees each row [x, c]: the class label, or the mask.
    cond_dim: int = 0
    pieces: tuple[int, ...] = (5, 5)
    init_range: float = 0.005
    # Dropout on D's layer inputs, on real and generated batches alike: the
    # reference keeps the first layer's inputs with p = 0.8 (scale 1.25) and
    # every later layer's inputs with p = 0.5 (scale 2).
    input_include_prob: float = 0.8
    hidden_include_prob: float = 0.5
    max_col_norm: float | None = None
    # Convolutional maxout layers applied before the fully connected ones
    # (the CIFAR-10 convolutional D); empty for an MLP.
    conv: tuple[ConvMaxoutConfig, ...] = ()


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedules (the reference code's common settings: SGD with momentum, minibatches of 100)."""

    optimizer: str = "sgd"
    lr: float = 0.1
    # lr is divided by lr_decay after every Algorithm-1 iteration, floored at min_lr.
    lr_decay: float = 1.000004
    min_lr: float = 1e-6
    # Momentum rises linearly from momentum_start (epoch 0) to momentum_end
    # (reached at momentum_saturate_epoch) and stays there.
    momentum_start: float = 0.5
    momentum_end: float = 0.7
    momentum_saturate_epoch: int = 250
    # Used only with optimizer="adam" (an addition, not the paper's).
    adam_betas: tuple[float, float] = (0.5, 0.999)
    # D's learning rate is lr x d_lr_scale (1 in the paper: one lr for both
    # players). Not 1 gives two time-scales; near 0 freezes D, a way to
    # provoke collapse on purpose.
    d_lr_scale: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Algorithm 1 and the bookkeeping around it."""

    epochs: int = 100
    batch_size: int = 100  # m in Algorithm 1
    k: int = 1  # discriminator steps per generator step
    g_loss: str = "nonsaturating"
    # "alternating" is Algorithm 1 as printed; "simultaneous" is the reference
    # code's single step in which D and G are updated from one batch of G samples.
    update: str = "simultaneous"
    seed: int = 0
    log_every: int = 50  # steps between metrics.jsonl rows
    sample_every: int = 1000  # steps between sample grids (fixed noise)
    checkpoint_every: int = 2000  # steps between checkpoints (one is always written at the end)
    # Also a checkpoint once this many minutes of wall clock have passed since the last one (0 = off),
    # so that a slow run loses at most this much to a SIGKILL (SIGTERM always checkpoints at once).
    checkpoint_minutes: float = 10.0
    # Checkpoints kept: the newest keep_checkpoints step-*.pt (with their .sha256) plus the ones `latest` and
    # `best` name and the one a branch began with; an older one is deleted only after a newer one is complete
    # (advnets.checkpoint.prune_checkpoints). 0 keeps all. 5 bounds the paper's 575,000-step MNIST schedule at
    # --checkpoint-every 5000 to 5 or 6 files of 16 MB, not 115.
    keep_checkpoints: int = 5
    device: str = "auto"
    # "fp32", or "bf16": forward passes under bfloat16 autocast (meant for
    # CUDA; evaluation stays float64).
    precision: str = "fp32"
    # The MLP presets' step as one compiled function (advnets.train.compiled): "on", "off", or "auto" (compiled
    # when the run can use it and is long enough to repay the compile time; eager otherwise).
    compile: str = "auto"
    # 0: stop at the first NaN/inf loss or gradient. K > 0: skip such updates
    # and stop after K consecutive ones.
    skip_nonfinite: int = 0
    # Mode-collapse checks (advnets.monitor) every monitor_every steps; 0 = off.
    monitor_every: int = 500
    # Also count digit classes among the samples with a cached classifier
    # (labelled 10-class data only; the first use trains it, ~1 min on a CPU).
    monitor_classes: bool = False
    # What a sustained collapse does: "warn" prints one warning per episode;
    # "stop" ends training and points `latest` at the last healthy checkpoint.
    on_collapse: str = "warn"
    # Two standard remedies for a D that wins too early (beyond the paper;
    # 1.0 and 0.0 are the paper's game). real_label: D's target for real rows,
    # one-sided label smoothing (Salimans et al., 2016): D is never rewarded for
    # certainty above it, so its logits on real data stay bounded.
    real_label: float = 1.0
    # instance_noise: the standard deviation of Gaussian noise added to every
    # image D sees, real and generated, decaying linearly to 0 over the run
    # (Sønderby et al., 2016; Arjovsky & Bottou, 2017): the noise makes the two
    # distributions overlap, so D cannot separate them perfectly early on.
    instance_noise: float = 0.0
    # Validation log-likelihood while training (advnets.train.validation): every eval_every epochs, a Parzen
    # estimate of G's samples on the validation split, with σ chosen there from the protocol's grid or fixed at
    # eval_sigma; the best check's checkpoint is kept as checkpoints/best. 0 = off.
    eval_every: int = 0
    eval_sigma: float | None = None
    # eval_metrics: what those checks log besides Parzen (which they always measure: it chooses `best`), a
    # comma-separated list of advnets.evaluate.metrics names on the same samples, against the validation split
    # (names checked by the monitor, when the run is built; unused while eval_every is 0).
    eval_metrics: str = "parzen"


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to train on (see advnets.data.load_dataset for the sources)."""

    source: str = "embedded"
    # Validation images taken from the end of the training files (IDX and
    # CIFAR-10); None means the reference split (10,000 for both).
    valid_size: int | None = None
    # "gcn": global contrast normalisation with scale 55, the reference
    # preprocessing of CIFAR-10; "none": pixels in [0, 1].
    preprocess: str = "none"
    # Image folders are resized / centre-cropped to this size and channel count.
    image_size: int = 28
    channels: int = 1
    # TFD: which of the five folds gives the valid and test splits.
    fold: int = 0


@dataclass(frozen=True)
class RunConfig:
    preset: str = "mnist"
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        validate(self)


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError naming the field when a value is impossible (one section at a time)."""
    g, d = cfg.generator, cfg.discriminator
    _validate_generator(g)
    _validate_discriminator(d)
    _validate_optim(cfg.optim)
    _validate_train(cfg.train)
    _validate_conditioning(g, d)
    _validate_data(cfg.data)


def _need(ok: bool, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {expected}, got {value!r}")


def _validate_generator(g: GeneratorConfig) -> None:
    _need(g.noise_dim >= 1, "generator.noise_dim", "a positive integer", g.noise_dim)
    _need(g.noise in NOISE_PRIORS, "generator.noise", f"one of {NOISE_PRIORS}", g.noise)
    _need(
        len(g.hidden_sizes) == len(g.hidden_activations),
        "generator.hidden_activations",
        f"one activation per hidden layer ({len(g.hidden_sizes)})",
        g.hidden_activations,
    )
    _need(all(s >= 1 for s in g.hidden_sizes), "generator.hidden_sizes", "positive", g.hidden_sizes)
    for a in g.hidden_activations:
        _need(a in HIDDEN_ACTIVATIONS, "generator.hidden_activations", f"in {HIDDEN_ACTIVATIONS}", a)
    _need(
        g.output_activation in OUTPUT_ACTIVATIONS,
        "generator.output_activation",
        f"one of {OUTPUT_ACTIVATIONS}",
        g.output_activation,
    )
    _need(g.init_range > 0, "generator.init_range", "> 0", g.init_range)


def _validate_discriminator(d: DiscriminatorConfig) -> None:
    _need(
        len(d.hidden_units) == len(d.pieces),
        "discriminator.pieces",
        f"one piece count per hidden layer ({len(d.hidden_units)})",
        d.pieces,
    )
    _need(len(d.hidden_units) >= 1, "discriminator.hidden_units", "non-empty", d.hidden_units)
    _need(all(u >= 1 for u in d.hidden_units), "discriminator.hidden_units", "positive", d.hidden_units)
    _need(all(p >= 1 for p in d.pieces), "discriminator.pieces", "positive", d.pieces)
    _need(d.init_range > 0, "discriminator.init_range", "> 0", d.init_range)
    for name in ("input_include_prob", "hidden_include_prob"):
        p = getattr(d, name)
        _need(0 < p <= 1, f"discriminator.{name}", "in (0, 1]", p)


def _validate_optim(o: OptimConfig) -> None:
    _need(o.optimizer in OPTIMIZERS, "optim.optimizer", f"one of {OPTIMIZERS}", o.optimizer)
    _need(o.lr > 0, "optim.lr", "> 0", o.lr)
    _need(o.lr_decay >= 1, "optim.lr_decay", ">= 1", o.lr_decay)
    _need(o.d_lr_scale >= 0, "optim.d_lr_scale", ">= 0 (0 freezes D: the collapse tests use it)", o.d_lr_scale)
    _need(o.min_lr >= 0, "optim.min_lr", ">= 0", o.min_lr)
    for name in ("momentum_start", "momentum_end"):
        _need(0 <= getattr(o, name) < 1, f"optim.{name}", "in [0, 1)", getattr(o, name))
    _need(o.momentum_saturate_epoch >= 1, "optim.momentum_saturate_epoch", ">= 1", o.momentum_saturate_epoch)


def _validate_train(t: TrainConfig) -> None:
    from advnets.evaluate.metrics import parse_metrics  # here, not at the top: advnets.evaluate imports config

    _need(t.epochs >= 1, "train.epochs", "a positive integer", t.epochs)
    _need(0 <= t.seed <= SEED_MAX, "train.seed", f"an integer from 0 to {SEED_MAX}", t.seed)
    _need(t.batch_size >= 1, "train.batch_size", "a positive integer", t.batch_size)
    _need(t.k >= 1, "train.k", "a positive integer", t.k)
    _need(t.g_loss in G_LOSSES, "train.g_loss", f"one of {G_LOSSES}", t.g_loss)
    _need(t.update in UPDATES, "train.update", f"one of {UPDATES}", t.update)
    _need(
        t.update == "alternating" or t.k == 1,
        "train.k",
        "1 with the simultaneous update (one step updates both players)",
        t.k,
    )
    _need(t.skip_nonfinite >= 0, "train.skip_nonfinite", ">= 0", t.skip_nonfinite)
    _need(t.monitor_every >= 0, "train.monitor_every", ">= 0 (0 = no collapse checks)", t.monitor_every)
    _need(t.precision in PRECISIONS, "train.precision", f"one of {PRECISIONS}", t.precision)
    _need(t.compile in COMPILE_MODES, "train.compile", f"one of {COMPILE_MODES}", t.compile)
    _need(0.5 < t.real_label <= 1, "train.real_label", "in (0.5, 1] (1 = the paper)", t.real_label)
    _need(t.instance_noise >= 0, "train.instance_noise", ">= 0 (0 = the paper)", t.instance_noise)
    _need(t.on_collapse in ON_COLLAPSE, "train.on_collapse", f"one of {ON_COLLAPSE}", t.on_collapse)
    _need(t.eval_every >= 0, "train.eval_every", ">= 0 epochs (0 = no validation checks)", t.eval_every)
    _need(t.eval_sigma is None or t.eval_sigma > 0, "train.eval_sigma", "> 0, or null to choose it", t.eval_sigma)
    parse_metrics(t.eval_metrics, "train.eval_metrics")  # unknown names first: a ConfigError naming them
    _need(
        t.eval_every > 0 or t.eval_metrics == "parzen",
        "train.eval_metrics",
        "'parzen' unless train.eval_every > 0 (the metrics are logged at those checks)",
        t.eval_metrics,
    )
    _need(t.checkpoint_minutes >= 0, "train.checkpoint_minutes", ">= 0 (0 = by steps only)", t.checkpoint_minutes)
    _need(t.keep_checkpoints >= 0, "train.keep_checkpoints", ">= 0 (0 = keep all)", t.keep_checkpoints)
    for name in ("log_every", "sample_every", "checkpoint_every"):
        _need(getattr(t, name) >= 1, f"train.{name}", "a positive integer", getattr(t, name))


def _validate_conditioning(g: GeneratorConfig, d: DiscriminatorConfig) -> None:
    """What G's and D's extra inputs must be for each condition, and the convolutional layers' shapes."""
    _need(g.condition in CONDITIONS, "generator.condition", f"one of {CONDITIONS}", g.condition)
    if g.condition == "none":
        _need(g.cond_dim == 0, "generator.cond_dim", '0 with generator.condition "none"', g.cond_dim)
    else:
        _need(g.cond_dim > 0, "generator.cond_dim", f'> 0 with generator.condition "{g.condition}"', g.cond_dim)
    expected_d = {"none": 0, "class": g.cond_dim, "inpaint": g.cond_dim // 2}.get(g.condition, 0)
    _need(d.cond_dim == expected_d, "discriminator.cond_dim", f"{expected_d} for this generator", d.cond_dim)
    _need(not (d.conv and d.cond_dim), "discriminator.cond_dim", "0 with a convolutional D (MLP D only)", d.cond_dim)
    if g.deconv_shape is not None:
        _need(
            len(g.hidden_sizes) >= 1
            and g.hidden_sizes[-1] == g.deconv_shape[0] * g.deconv_shape[1] * g.deconv_shape[2],
            "generator.deconv_shape",
            f"channels x height x width = the last hidden size ({g.hidden_sizes[-1:]})",
            g.deconv_shape,
        )
        _need(g.deconv_kernel >= 1 and g.deconv_stride >= 1, "generator.deconv_kernel", ">= 1", g.deconv_kernel)
    for layer in d.conv:
        for name in ("channels", "pieces", "kernel", "pool", "pool_stride"):
            _need(getattr(layer, name) >= 1, f"discriminator.conv.{name}", ">= 1", getattr(layer, name))
        _need(layer.padding >= 0, "discriminator.conv.padding", ">= 0", layer.padding)


def _validate_data(data: DataConfig) -> None:
    _need(data.preprocess in PREPROCESSING, "data.preprocess", f"one of {PREPROCESSING}", data.preprocess)
    _need(data.image_size >= 1, "data.image_size", ">= 1", data.image_size)
    _need(data.channels in (1, 3), "data.channels", "1 (grey) or 3 (RGB)", data.channels)
    _need(data.fold >= 0, "data.fold", ">= 0", data.fold)
    _need(
        data.valid_size is None or data.valid_size >= 0,
        "data.valid_size",
        ">= 0",
        data.valid_size,
    )


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    where = path or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(hints[k], v, f"{path}.{k}" if path else k) for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, path) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{path} must have {len(args)} items, got {value!r}")
        return tuple(_coerce(a, v, path) for a, v in zip(args, value, strict=True))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{path} must be a {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a bug, not user input


def config_changes(old: Any, new: Any) -> dict[str, list[Any]]:
    """``{"train.epochs": [100, 200], ...}``: every leaf that differs, by dotted name."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(to_dict(old)), flat(to_dict(new))
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def override(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that names the field when it is unknown."""
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) for {type(cfg).__name__}: {', '.join(unknown)}")
    return dataclasses.replace(cfg, **changes)


def with_condition(cfg: RunConfig, condition: str, size: int) -> RunConfig:
    """``cfg`` with conditional nets (paper §7). ``"class"`` (Section 7.1): a one-hot label of
    ``size`` classes enters G and D. ``"inpaint"`` (Section 7.3): G gets z, the visible pixels and the
    mask of ``size``-pixel images, D the completed image and the mask.

    Raises:
        ConfigError: an unknown ``condition``, or one the architecture cannot take (a convolutional D).
    """
    dims = {"class": (size, size), "inpaint": (2 * size, size)}
    if condition not in dims:
        raise ConfigError(f"condition must be one of {tuple(dims)}, got {condition!r}")
    g_dim, d_dim = dims[condition]
    return override(
        cfg,
        generator=override(cfg.generator, condition=condition, cond_dim=g_dim),
        discriminator=override(cfg.discriminator, cond_dim=d_dim),
    )
