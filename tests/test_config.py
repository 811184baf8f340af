"""Config (config.py): frozen, typed, strict about unknown keys and wrong types."""

import dataclasses
import json

import pytest

from advnets.config import RunConfig, from_dict, override, to_dict
from advnets.errors import ConfigError
from advnets.presets import PRESETS, get_preset


def test_preset_round_trips_through_json():
    cfg = PRESETS["mnist"]
    again = from_dict(RunConfig, json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg


def test_mnist_preset_holds_the_reference_hyperparameters():
    cfg = PRESETS["mnist"]
    assert cfg.generator.noise_dim == 100 and cfg.generator.noise == "uniform"
    assert cfg.generator.hidden_sizes == (1200, 1200) and cfg.generator.init_range == 0.05
    assert cfg.discriminator.hidden_units == (240, 240) and cfg.discriminator.pieces == (5, 5)
    assert cfg.discriminator.init_range == 0.005
    assert (cfg.discriminator.input_include_prob, cfg.discriminator.hidden_include_prob) == (0.8, 0.5)
    assert (cfg.optim.lr, cfg.train.batch_size, cfg.train.k) == (0.1, 100, 1)
    assert (cfg.optim.momentum_start, cfg.optim.momentum_end, cfg.optim.momentum_saturate_epoch) == (0.5, 0.7, 250)
    assert (cfg.optim.lr_decay, cfg.optim.min_lr) == (1.000004, 1e-6)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["mnist"].train.epochs = 3  # type: ignore[misc]


def test_unknown_key_is_an_error_naming_it():
    doc = to_dict(PRESETS["mnist"])
    doc["train"]["epohcs"] = 3
    with pytest.raises(ConfigError, match="epohcs"):
        from_dict(RunConfig, doc)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "epochs", "3"),
        ("train", "epochs", 2.5),
        ("optim", "lr", "fast"),
        ("train", "k", True),
        ("generator", "hidden_sizes", 1200),
    ],
)
def test_wrong_type_is_an_error_naming_the_field(section, key, value):
    doc = to_dict(PRESETS["mnist"])
    doc[section][key] = value
    with pytest.raises(ConfigError, match=key):
        from_dict(RunConfig, doc)


@pytest.mark.parametrize(
    ("section", "change", "field"),
    [
        ("train", {"k": 0}, "k"),
        ("optim", {"lr": -1.0}, "lr"),
        ("train", {"update": "sideways"}, "update"),
        ("discriminator", {"pieces": (5,)}, "pieces"),
        ("train", {"k": 2, "update": "simultaneous"}, "k"),
        ("discriminator", {"input_include_prob": 0.0}, "input_include_prob"),
        ("train", {"seed": -1}, "seed"),
        ("train", {"seed": 2**31}, "seed"),  # beyond what every RNG it reaches accepts
        ("train", {"eval_every": 1, "eval_metrics": "fd,nope"}, "eval_metrics 'fd,nope': unknown nope"),
    ],
)
def test_impossible_values_are_rejected(section, change, field):
    cfg = PRESETS["mnist"]
    with pytest.raises(ConfigError, match=field):
        override(cfg, **{section: override(getattr(cfg, section), **change)})


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="mnist"):
        get_preset("mnist2")
