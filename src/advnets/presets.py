"""The paper's presets and the options that change them.

The numbers in :data:`PRESETS` are the published hyperparameters of the paper's reference code
(github.com/goodfeli/adversarial: mnist.yaml, tfd.yaml and the CIFAR-10 files); :func:`train_config_from_options`
sets the dotted fields that ``advnets train``'s flags name on top of one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from advnets.config import (
    CONDITIONAL_CLASSES,
    ConvMaxoutConfig,
    DataConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    override,
    with_condition,
)
from advnets.errors import ConfigError

# The paper's MNIST model (the reference code's mnist.yaml): G = ReLU 1200 -> ReLU 1200
# -> sigmoid 784 with U(+-0.05) init; D = maxout 240x5 -> maxout 240x5 -> sigmoid
# with U(+-0.005) init; lr 0.1, batch 100.
_TFD_NORM = 1.9365  # max column norm on every layer of the reference TFD model
_CIFAR_DATA = DataConfig(source="cifar10", preprocess="gcn", image_size=32, channels=3)

PRESETS: dict[str, RunConfig] = {
    "mnist": RunConfig(preset="mnist"),
    # TFD (the reference code's tfd.yaml): G = ReLU 8000 -> sigmoid 8000 -> sigmoid 2304 (48x48),
    # D = maxout 1200x5 -> maxout 1200x5, lr 0.05, max column norm 1.9365.
    "tfd": RunConfig(
        preset="tfd",
        data=DataConfig(source="tfd", image_size=48, channels=1),
        generator=GeneratorConfig(
            hidden_sizes=(8000, 8000), hidden_activations=("relu", "sigmoid"), max_col_norm=_TFD_NORM
        ),
        discriminator=DiscriminatorConfig(hidden_units=(1200, 1200), max_col_norm=_TFD_NORM),
        optim=OptimConfig(lr=0.05),
    ),
    # CIFAR-10 fully connected: G = ReLU 8000 -> sigmoid 8000 -> linear 3072
    # (output init U(+-0.5)), D = maxout 1600x5 -> maxout 1600x5, lr 0.025, on
    # globally contrast-normalised images (scale 55).
    "cifar10-mlp": RunConfig(
        preset="cifar10-mlp",
        data=_CIFAR_DATA,
        generator=GeneratorConfig(
            hidden_sizes=(8000, 8000),
            hidden_activations=("relu", "sigmoid"),
            output_activation="linear",
            output_init_range=0.5,
            output_bias_from_data=False,
        ),
        discriminator=DiscriminatorConfig(hidden_units=(1600, 1600)),
        optim=OptimConfig(lr=0.025),
    ),
    # CIFAR-10 convolutional: G = ReLU 8000 -> sigmoid 8000 -> reshape 80x10x10
    # -> transposed conv 5x5 stride 3 -> 3x32x32 ((10 - 1) * 3 + 5 = 32, no
    # padding needed); D = three conv-maxout layers with max-pooling -> maxout
    # 500x5; lr 0.004, batch 128.
    "cifar10-conv": RunConfig(
        preset="cifar10-conv",
        data=_CIFAR_DATA,
        generator=GeneratorConfig(
            hidden_sizes=(8000, 8000),
            hidden_activations=("relu", "sigmoid"),
            output_activation="linear",
            output_bias_from_data=False,
            deconv_shape=(80, 10, 10),
        ),
        discriminator=DiscriminatorConfig(
            conv=(
                ConvMaxoutConfig(channels=32, pieces=2, kernel=8, padding=4, pool=4, pool_stride=2),
                ConvMaxoutConfig(channels=32, pieces=2, kernel=8, padding=3, pool=4, pool_stride=2),
                ConvMaxoutConfig(channels=192, pieces=2, kernel=5, padding=3, pool=2, pool_stride=2),
            ),
            hidden_units=(500,),
            pieces=(5,),
        ),
        optim=OptimConfig(lr=0.004),
        train=TrainConfig(batch_size=128),
    ),
}


def get_preset(name: str) -> RunConfig:
    """The preset ``name`` (a key of :data:`PRESETS`); ConfigError naming the choices otherwise."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def train_config_from_options(
    options: dict[str, Any], base: RunConfig | None = None, *, conditional: bool = False
) -> RunConfig:
    """``base`` (default: the mnist preset) with ``options`` set, each named by its dotted field
    (``{"train.epochs": 5, "optim.lr": 0.01, "data.source": "embedded-digits"}``; a None value keeps
    the base's): what the flags of ``advnets train`` do, with the two settings they imply. ``k`` > 1
    without ``train.update`` selects the alternating update (the only one with k D steps), and the
    adam optimizer without ``optim.lr`` takes lr 2e-4 without decay (Radford et al., 2016).
    ``conditional``: a one-hot label of :data:`CONDITIONAL_CLASSES` classes into G and D (§7.1).

    Raises:
        ConfigError: an unknown option name, or a value :func:`validate` refuses.
    """
    cfg = base if base is not None else PRESETS["mnist"]
    chosen = {name: value for name, value in options.items() if value is not None}
    if chosen.get("train.k", 1) > 1 and "train.update" not in chosen:
        chosen["train.update"] = "alternating"  # k > 1 only exists in Algorithm 1's alternating form
    if chosen.get("optim.optimizer") == "adam" and "optim.lr" not in chosen:
        chosen = {"optim.lr": 2e-4, "optim.lr_decay": 1.0, **chosen}  # the usual Adam setting for GANs
    sections: dict[str, dict[str, Any]] = {}
    for name, value in chosen.items():
        section, _, key = name.partition(".")
        if not key or section not in _SECTIONS:
            raise ConfigError(f"unknown option {name!r}: expected SECTION.FIELD with a section in {_SECTIONS}")
        sections.setdefault(section, {})[key] = value
    cfg = override(cfg, **{s: override(getattr(cfg, s), **values) for s, values in sections.items()})
    return with_condition(cfg, "class", CONDITIONAL_CLASSES) if conditional else cfg


_SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name != "preset")  # data, generator, ...
