"""Conditional adversarial nets p(x | c), the paper's Section 7.1 (issue 9, part 1)."""

import json

import pytest
import torch

from advnets.conditional import conditional_accuracy, grid_labels, one_hot, with_condition
from advnets.config import override
from advnets.errors import AdvnetsError, ConfigError
from advnets.evaluate.classifier import load_or_train_classifier
from advnets.nets import build_nets
from advnets.presets import PRESETS
from advnets.train import Trainer
from conftest import cli_subprocess as _advnets
from conftest import tiny_config


def _conditional(cfg, k=10):
    return override(
        cfg,
        generator=override(cfg.generator, condition="class", cond_dim=k),
        discriminator=override(cfg.discriminator, cond_dim=k),
    )


def _learnable():
    """Nets a little wider than tiny_config's, with Adam: they learn the labels in ~2,000 steps."""
    cfg = tiny_config(epochs=30, monitor_every=0)
    return _conditional(
        override(
            cfg,
            generator=override(cfg.generator, hidden_sizes=(128, 128)),
            discriminator=override(cfg.discriminator, hidden_units=(64, 64)),
            optim=override(cfg.optim, optimizer="adam", lr=1e-3, lr_decay=1.0),
        )
    )


def test_the_label_enters_the_first_layer_of_g_and_d():
    cfg = _conditional(PRESETS["mnist"])
    g, d = build_nets(cfg.generator, cfg.discriminator, (1, 28, 28))
    g_in = sorted(m.in_features for m in g.modules() if isinstance(m, torch.nn.Linear))
    d_in = sorted(m.in_features for m in d.modules() if isinstance(m, torch.nn.Linear))
    assert g_in == [100 + 10, 1200, 1200] and d_in == [240, 240, 784 + 10]
    x = torch.rand(4, 784)
    c = torch.tensor([0, 3, 9, 3])
    assert g(with_condition(torch.rand(4, 100), c, 10)).shape == (4, 784)
    assert d(with_condition(x, c, 10)).shape == (4,)


def test_configs_must_agree_and_the_conv_d_is_refused():
    cfg = PRESETS["mnist"]
    with pytest.raises(ConfigError, match="generator.cond_dim must be 0"):
        override(cfg, generator=override(cfg.generator, cond_dim=10))
    with pytest.raises(ConfigError, match="discriminator.cond_dim must be 10"):
        override(cfg, generator=override(cfg.generator, condition="class", cond_dim=10))
    conv = PRESETS["cifar10-conv"]
    with pytest.raises(ConfigError, match="convolutional D"):
        _conditional(conv)


def test_real_rows_carry_their_own_labels_and_generated_rows_the_labels_g_was_given(digits):
    tr = Trainer(_conditional(tiny_config()), digits)
    idx = tr.order.perm[:20]
    rows = tr.next_real_batch()
    assert rows.shape == (20, 64 + 10)
    assert torch.equal(rows[:, :64], digits.train.reshape(len(digits.train), -1)[idx])
    assert torch.equal(rows[:, 64:], one_hot(digits.train_labels[idx], 10))
    z = tr.noise(500)
    assert z.shape == (500, 16 + 10) and torch.equal(z[:, 16:].sum(1), torch.ones(500))
    counts = z[:, 16:].sum(0)
    assert counts.min() > 20  # labels for generated rows are drawn uniformly over the classes
    fake = tr.g(z)
    assert torch.equal(tr.d_rows(fake, z)[:, 64:], z[:, 16:])


def test_grid_rows_show_one_class_each():
    assert grid_labels(100, 10, 10).reshape(10, 10).T.tolist() == [list(range(10))] * 10
    assert grid_labels(16, 10, 4).tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


@pytest.mark.slow  # trains a conditional model (~30 s)
def test_a_conditional_model_learns_to_draw_the_class_it_is_given(tmp_path, digits):
    """Measured with the digit classifier trained on real images only: chance is 0.1."""
    classifier = load_or_train_classifier(digits, tmp_path)
    tr = Trainer(_learnable(), digits)
    before = conditional_accuracy(tr.g, classifier, per_class=50)["accuracy"]
    tr.fit(progress=False)
    after = conditional_accuracy(tr.g, classifier, per_class=50)
    assert before < 0.3
    assert after["accuracy"] > 0.4, after
    assert sum(a > 0.5 for a in after["per_class"]) >= 5


def test_training_without_labels_is_a_clear_error(digits):
    from dataclasses import replace

    unlabelled = replace(digits, train_labels=torch.full_like(digits.train_labels, -1))
    with pytest.raises(AdvnetsError, match="needs class labels"):
        Trainer(_conditional(tiny_config()), unlabelled)
    with pytest.raises(AdvnetsError, match="built for 5 classes"):
        Trainer(_conditional(tiny_config(), k=5), digits)


@pytest.mark.slow  # trains through the CLI (~45 s)
def test_cli_trains_samples_by_class_and_classifies(tmp_path):
    run = tmp_path / "cond"
    out = _advnets(
        "train", "--data", "embedded-digits", "--epochs", "2", "--conditional", "--out", run, "--no-progress"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "config.json").read_text())["generator"]["cond_dim"] == 10
    png = tmp_path / "threes.png"
    out = _advnets("sample", "--run", run, "--class", "3", "-n", "16", "--out", png)
    assert out.returncode == 0 and png.stat().st_size > 0, out.stderr
    bad = _advnets("sample", "--run", run, "--class", "12", "--out", png)
    assert bad.returncode == 2 and "--class must lie in 0..9" in bad.stderr
    out = _advnets("classes", "--run", run, "-n", "200", "--data-dir", tmp_path / "data")
    assert out.returncode == 0, out.stderr
    result = json.loads((run / "classes.json").read_text())
    assert len(result["conditional"]["per_class"]) == 10
    assert 0 <= result["classification_accuracy_score"] <= 1
    assert sum(result["coverage"]["counts"]) == 200


def test_cli_class_on_an_unconditional_model_exits_2(tmp_path):
    run = tmp_path / "plain"
    assert (
        _advnets("train", "--data", "embedded-digits", "--epochs", "1", "--out", run, "--no-progress").returncode == 0
    )
    out = _advnets("sample", "--run", run, "--class", "3", "--out", tmp_path / "x.png")
    assert out.returncode == 2 and "needs a conditional model" in out.stderr


@pytest.mark.parametrize("blocks", [1, 2])
def test_d_s_input_dropout_spares_the_label_columns(blocks):
    """The pixels are dropped (kept with p = 0.8, scaled by 1.25); the one-hot label reaches D's
    first layer as it is, in one call and in the two-block call of the simultaneous update."""
    cfg = _conditional(PRESETS["mnist"])
    _, d = build_nets(cfg.generator, cfg.discriminator, (1, 28, 28))
    d.dropout_generator = torch.Generator().manual_seed(0)
    seen = []
    d.hidden[0].register_forward_pre_hook(lambda module, args: seen.append(torch.cat(args)))
    x, c = torch.rand(64, 784) + 0.5, torch.arange(64) % 10
    rows = with_condition(x, c, 10)
    d(*rows.split(64 // blocks))
    first = seen[0]
    assert torch.equal(first[:, 784:], one_hot(c, 10))
    kept = first[:, :784] != 0
    assert 0.75 < kept.float().mean() < 0.85
    torch.testing.assert_close(first[:, :784][kept], 1.25 * x[kept])


def test_an_inpainting_d_keeps_dropout_on_its_mask_columns():
    """Measured the other way for inpainting (nets.build_nets says why): only a class label is spared."""
    base = PRESETS["mnist"]
    cfg = override(
        base,
        generator=override(base.generator, condition="inpaint", cond_dim=2 * 784),
        discriminator=override(base.discriminator, cond_dim=784),
    )
    _, d = build_nets(cfg.generator, cfg.discriminator, (1, 28, 28))
    d.dropout_generator = torch.Generator().manual_seed(0)
    seen = []
    d.hidden[0].register_forward_pre_hook(lambda module, args: seen.append(torch.cat(args)))
    d(torch.ones(64, 2 * 784))
    assert 0.75 < (seen[0][:, 784:] != 0).float().mean() < 0.85
