"""Inpainting: one model for every conditional p(x_hidden | x_visible), Section 7.3 (issue 9, part 3)."""

import json

import pytest
import torch

from advnets.config import override
from advnets.errors import AdvnetsError, ConfigError
from advnets.inpaint import MASKS, complete, completions, evaluate_inpainting, g_input, make_masks
from advnets.train import Trainer
from conftest import cli_subprocess as _advnets
from conftest import tiny_config


def _inpainting(epochs=1):
    cfg = tiny_config(epochs=epochs, monitor_every=0)
    return override(
        cfg,
        generator=override(cfg.generator, hidden_sizes=(128, 128), condition="inpaint", cond_dim=2 * 64),
        discriminator=override(cfg.discriminator, hidden_units=(64, 64), cond_dim=64),
        optim=override(cfg.optim, optimizer="adam", lr=1e-3, lr_decay=1.0),
    )


@pytest.mark.parametrize("kind", MASKS)
def test_masks_hide_the_stated_part(kind):
    m = make_masks(200, (1, 8, 8), kind, torch.Generator().manual_seed(0)).reshape(200, 8, 8)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    expected = {
        "right-half": lambda m: m[:, :, 4:].eq(1).all() and m[:, :, :4].eq(0).all(),
        "left-half": lambda m: m[:, :, :4].eq(1).all() and m[:, :, 4:].eq(0).all(),
        "top-half": lambda m: m[:, :4].eq(1).all() and m[:, 4:].eq(0).all(),
        "bottom-half": lambda m: m[:, 4:].eq(1).all() and m[:, :4].eq(0).all(),
        "block": lambda m: m.sum((1, 2)).eq(16).all(),  # a 4 x 4 square
        "mixed": lambda m: torch.isin(m.sum((1, 2)), torch.tensor([16.0, 32.0])).all(),
    }[kind]
    assert expected(m)
    if kind in ("block", "mixed"):
        assert len({tuple(r.flatten().tolist()) for r in m}) > 5  # positions / kinds vary


def test_unknown_mask_is_a_clear_error():
    with pytest.raises(AdvnetsError, match="--mask diagonal"):
        make_masks(1, (1, 8, 8), "diagonal")


def test_completion_keeps_the_visible_pixels_and_takes_the_hidden_ones_from_g():
    x = torch.rand(3, 64)
    m = make_masks(3, (1, 8, 8), "right-half")
    zin = g_input(torch.rand(3, 16), x, m)
    g_out = torch.rand(3, 64)
    done, masks = complete(g_out, zin, 64)
    assert torch.equal(masks, m)
    assert torch.equal(done[m == 0], x[m == 0]) and torch.equal(done[m == 1], g_out[m == 1])
    assert torch.equal(zin[:, 16:80][m == 1], torch.zeros(int(m.sum())))  # G never sees the hidden pixels


def test_the_trainer_feeds_d_real_rows_with_masks_and_completed_generated_rows(digits):
    tr = Trainer(_inpainting(), digits)
    real = tr.next_real_batch()
    x, masks = tr.conditioning.context
    assert real.shape == (20, 128) and torch.equal(real[:, 64:], masks) and torch.equal(real[:, :64], x)
    z = tr.noise(20)
    fake = tr.g(z)
    rows = tr.d_rows(fake, z)
    assert torch.equal(rows[:, 64:], masks)
    assert torch.equal(rows[:, :64][masks == 0], x[masks == 0])  # only the hidden part is generated
    # G's gradient comes only through the pixels it fills in.
    fake.retain_grad()
    rows[:, :64].sum().backward()
    assert torch.equal(fake.grad, masks)


def test_the_config_must_size_g_and_d_for_inpainting(digits):
    cfg = tiny_config()
    with pytest.raises(ConfigError, match="discriminator.cond_dim"):
        override(cfg, generator=override(cfg.generator, condition="inpaint", cond_dim=128))
    wrong = override(
        cfg,
        generator=override(cfg.generator, condition="inpaint", cond_dim=100),
        discriminator=override(cfg.discriminator, cond_dim=50),
    )
    with pytest.raises(AdvnetsError, match="needs generator.cond_dim 128"):
        Trainer(wrong, digits)


@pytest.mark.slow  # trains an inpainting model (~35 s)
def test_training_makes_completions_fit_the_visible_part_and_vary_with_z(digits):
    """Completions of held-out digits come closer to the hidden truth than the
    same part of a random training digit (a sharp sample that ignores the
    visible part). The mean image, a blur, has a lower RMS error still: the
    error rewards averaging, which is why it is not the bar for a sampler."""
    tr = Trainer(_inpainting(epochs=40), digits)
    tr.fit(progress=False)
    result = evaluate_inpainting(tr.g, digits.test, digits.train, "block", k=5)
    assert result["rmse_completion"] < result["rmse_random_training_image"] - 0.03, result
    assert result["completion_diversity"] > 0.01, result
    done = completions(tr.g, digits.test[:4], make_masks(4, (1, 8, 8), "bottom-half"), k=3)
    assert done.shape == (4, 3, 64)
    assert torch.equal(done[:, :, :32], digits.test[:4].reshape(4, 1, 64)[:, :, :32].expand(4, 3, 32))


@pytest.mark.slow  # trains through the CLI (~45 s)
def test_cli_trains_and_inpaints_with_a_figure_and_numbers(tmp_path):
    run = tmp_path / "inp"
    out = _advnets("train", "--data", "embedded-digits", "--epochs", "2", "--inpaint", "--out", run, "--no-progress")
    assert out.returncode == 0, out.stderr
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["generator"]["condition"] == "inpaint" and cfg["discriminator"]["cond_dim"] == 64
    png = tmp_path / "fill.png"
    out = _advnets("inpaint", "--run", run, "--mask", "block", "-n", "4", "--completions", "3", "--out", png)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(png.with_suffix(".json").read_text())
    assert metrics["mask"] == "block" and metrics["images"] == 179 and metrics["completions_per_image"] == 3
    from PIL import Image

    assert Image.open(png).size == (2 * (5 * 10 + 2), 2 * (4 * 10 + 2))  # 4 rows of input, 3 completions, original
    assert _advnets("sample", "--run", run, "--out", tmp_path / "s.png").returncode == 2
    plain = tmp_path / "plain"
    assert (
        _advnets("train", "--data", "embedded-digits", "--epochs", "1", "--out", plain, "--no-progress").returncode == 0
    )
    out = _advnets("inpaint", "--run", plain)
    assert out.returncode == 2 and "not trained for inpainting" in out.stderr
