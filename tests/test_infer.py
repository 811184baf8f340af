"""Learned approximate inference (paper §7, item 2): an encoder E(x) -> z for a fixed G."""

import json

import pytest
import torch
from PIL import Image

from advnets.config import GeneratorConfig, override
from advnets.errors import CheckpointError, ConfigError
from advnets.infer import (
    InferConfig,
    evaluate_encoder,
    jacobian_rank,
    load_encoder,
    random_pair_distance,
    reconstruct,
    save_encoder,
    train_encoder,
    z_recovery,
)
from advnets.nets import Generator, build_nets
from advnets.train import Trainer
from conftest import cli_in_process as cli
from conftest import tiny_config

SMALL = InferConfig(hidden_sizes=(64, 64), steps=800, lr=3e-3, eval_samples=500, pairs=5000)


def _adam(cfg, **generator):
    # The tiny SGD config barely moves G in a few epochs; Adam gives varied samples in ~1 s.
    return override(
        cfg,
        optim=override(cfg.optim, optimizer="adam", lr=2e-3, lr_decay=1.0),
        generator=override(cfg.generator, **generator),
    )


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """A tiny G trained on the 8x8 digits, saved as a run directory."""
    run_dir = tmp_path_factory.mktemp("infer") / "run"
    cfg = _adam(tiny_config(epochs=5, sample_every=10_000, checkpoint_every=10_000))
    cfg = override(cfg, data=override(cfg.data, source="embedded-digits"))
    trainer = Trainer(cfg, digits)
    trainer.fit(run_dir, progress=False)
    return run_dir, trainer.g.eval()


def _random_g(noise: str, noise_dim: int = 4):
    """An untrained G with large weights: a smooth, (almost everywhere) injective map z -> x."""
    cfg = tiny_config()
    g_cfg = override(cfg.generator, noise=noise, noise_dim=noise_dim, init_range=0.3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        g, _ = build_nets(g_cfg, cfg.discriminator, (1, 8, 8))
    return g.eval()


@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_encoder_inverts_an_injective_generator(noise):
    g = _random_g(noise)
    enc, summary = train_encoder(g, override(SMALL, steps=1500))
    z = z_recovery(g, enc, 1000, seed=5)
    # Predicting the prior mean scores ~1 (measured as such); the learned inverse is far better.
    assert 0.9 < z["prior_mean_rel_error"] < 1.1
    assert z["rel_error"] < 0.15, z  # measured 0.07 (uniform) and 0.08 (normal)
    if noise == "uniform":  # outputs live in the prior's support [-sqrt(3), sqrt(3)]
        codes = enc(torch.randn(500, 64) * 3)
        assert codes.abs().max() <= 3**0.5 + 1e-6
    assert summary["regression_loss"] < 0.2


def test_encoder_on_a_trained_generator_reconstructs_its_samples(trained, digits):
    _, g = trained
    before = {k: v.clone() for k, v in g.state_dict().items()}
    g.train()  # train_encoder must put G in eval mode and give it back as it was
    enc, _ = train_encoder(g, SMALL)
    assert g.training and all(p.requires_grad for p in g.parameters())
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # G is fixed
    g.eval()
    m = evaluate_encoder(g, enc, digits.test, digits.train, eval_samples=500, pairs=5000)
    s = m["sample_reconstruction"]
    # G(E(G(z))) lands next to G(z): a small fraction of the distance between two random samples.
    assert s["ratio_to_random_pair"] < 0.25, s
    # A trained GAN ignores most directions of z (few large singular values of its Jacobian), so z
    # itself is only partly recoverable; still better than the prior mean.
    assert m["z_recovery"]["rel_error"] < 0.97 * m["z_recovery"]["prior_mean_rel_error"]
    untrained, _ = train_encoder(g, override(SMALL, steps=1))
    u = evaluate_encoder(g, untrained, digits.test, None, eval_samples=500, pairs=5000)
    assert u["sample_reconstruction"]["ratio_to_random_pair"] > 2 * s["ratio_to_random_pair"]
    t = m["test_reconstruction"]
    assert set(t) >= {"mean_distance", "mse_per_pixel", "random_pair_distance", "ratio_to_random_pair"}
    assert t["n"] == len(digits.test) and t["nearest_train_distance"] < t["mean_image_distance"]


def _pca_g(digits, k=16):
    """A linear G(z) = mean + W z whose range is the top-k principal subspace of the training digits
    (W scaled so that unit-variance z gives the data's variance along each component): the best
    reconstruction G allows is then the PCA projection, known in closed form."""
    x = digits.train.reshape(len(digits.train), -1).double()
    mean = x.mean(0)
    _, s, v = torch.linalg.svd(x - mean, full_matrices=False)
    cfg = GeneratorConfig(noise_dim=k, hidden_sizes=(), hidden_activations=(), output_activation="linear")
    g = Generator(cfg, (1, 8, 8))
    with torch.no_grad():
        g.output.weight.copy_((v[:k].T * s[:k] / len(x) ** 0.5).float())
        g.output.bias.copy_(mean.float())
    t = digits.test.reshape(len(digits.test), -1).double()
    best = float(((((t - mean) @ v[:k].T @ v[:k] + mean) - t) ** 2).mean())
    return g.eval(), best


def test_finetuning_on_real_images_closes_the_gap_to_the_best_reconstruction(digits):
    g, best = _pca_g(digits)
    cfg = override(SMALL, steps=300)
    plain, _ = train_encoder(g, cfg)
    tuned, summary = train_encoder(g, override(cfg, finetune_steps=600, finetune_lr=1e-3), digits.train)
    assert summary["z_rel_error_before_finetune"] < 0.05  # a linear G is easy to invert
    assert summary["finetune_loss"] > 0

    def err(enc):
        return float(((reconstruct(g, enc, digits.test) - digits.test) ** 2).mean())

    # E trained on G's samples only has never seen the off-subspace part of real images; fine-tuning
    # through ||G(E(x)) - x||^2 moves G(E(x)) towards the projection (measured: gap 0.0046 -> 0.0023).
    assert best < err(tuned) and err(tuned) - best < 0.7 * (err(plain) - best)
    with pytest.raises(ConfigError, match="finetune"):
        train_encoder(g, override(cfg, finetune_steps=5))  # no images given


def test_jacobian_rank_counts_the_directions_of_z_that_g_uses(digits):
    g, _ = _pca_g(digits, k=12)
    assert jacobian_rank(g)["used_directions"] == 12  # a linear G of rank 12
    g = _random_g("uniform", noise_dim=8)
    with torch.no_grad():
        g.net[0].weight[:, 5:] = 0  # G ignores z_5, z_6, z_7
    r = jacobian_rank(g, n=10)
    assert r["used_directions"] == 5 and r["noise_dim"] == 8 and len(r["median_singular_values"]) == 8
    assert max(r["median_singular_values"][5:]) < 1e-6
    # ... and so no encoder recovers them: at least 3/8 of z's variance stays unexplained.
    enc, _ = train_encoder(g, override(SMALL, steps=400))
    assert z_recovery(g, enc, 1000, seed=1)["rel_error"] > 0.33


def test_random_pair_distance_matches_the_exact_mean_over_all_pairs():
    x = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    flat = x.reshape(40, -1).double()
    d = torch.cdist(flat, flat)
    exact = float(d.sum() / (40 * 39))
    assert random_pair_distance(x, 200_000, seed=1) == pytest.approx(exact, rel=0.01)
    with pytest.raises(ConfigError):
        random_pair_distance(x[:1], 10, seed=0)


def test_encoder_files_round_trip_and_damage_is_reported(tmp_path):
    g = _random_g("uniform")
    enc, _ = train_encoder(g, override(SMALL, steps=5))
    save_encoder(tmp_path, enc, {"checkpoint": "step-00000001.pt"})
    loaded, meta = load_encoder(tmp_path)
    x = torch.rand(7, 64)
    assert torch.equal(loaded(x), enc(x)) and meta["checkpoint"] == "step-00000001.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.json", "encoder.safetensors"]
    weights = tmp_path / "encoder.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_encoder(tmp_path)
    with pytest.raises(CheckpointError, match="advnets infer"):
        load_encoder(tmp_path / "nothing-here")


def test_infer_config_rejects_impossible_values():
    with pytest.raises(ConfigError, match="steps"):
        InferConfig(steps=0)
    with pytest.raises(ConfigError, match="finetune_steps"):
        InferConfig(finetune_steps=-1)


# --------------------------------------------------------------------------- CLI


def test_cli_infer_writes_encoder_figure_and_metrics(trained):
    run_dir, _ = trained
    code, stdout, stderr = cli(
        "infer", "--run", run_dir, "--steps", "300", "--hidden", "32,32", "--finetune-steps", "20",
        "--eval-samples", "200", "--show", "20", "--no-progress", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, stderr
    assert "z recovery" in stdout and "random pair" in stdout
    metrics = json.loads((run_dir / "inference" / "metrics.json").read_text())
    for key in ("z_recovery", "sample_reconstruction", "test_reconstruction", "training", "checkpoint", "step"):
        assert key in metrics, key
    assert metrics["training"]["finetune_steps"] == 20 and metrics["config"]["hidden_sizes"] == [32, 32]
    before = metrics["training"]["before_finetune"]  # the regression's own numbers, to compare
    assert set(before) == {"z_recovery", "test_reconstruction"} and "before fine-tuning" in stdout
    assert 0 < metrics["z_recovery"]["g_jacobian"]["used_directions"] <= 16 and "directions of z" in stdout
    assert 0 <= metrics["z_recovery"]["rel_error"] and metrics["test_reconstruction"]["ratio_to_random_pair"] > 0
    meta = json.loads((run_dir / "encoder.json").read_text())
    assert meta["architecture"]["hidden_sizes"] == [32, 32] and meta["checkpoint"] == metrics["checkpoint"]
    # 20 test images in rows of 10: 2 rows of originals, each followed by a row of reconstructions.
    img = Image.open(run_dir / "inference" / "reconstructions.png")
    assert img.size == (2 * (10 * 10 + 2), 2 * (4 * 10 + 2))
    enc, _ = load_encoder(run_dir)
    assert enc.noise_dim == 16


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["infer", "--run", "/no/such/run"], "/no/such/run"),
        (["infer"], "--run"),
        (["infer", "--run", "EMPTY"], "is not an advnets run"),
        (["infer", "--run", "EMPTY", "--steps", "0"], "--steps"),
        (["infer", "--run", "EMPTY", "--hidden", "12,x"], "--hidden"),
        (["infer", "--run", "EMPTY", "--finetune-steps", "-3"], "--finetune-steps"),
    ],
)
def test_cli_infer_bad_input_exits_2_with_one_line(tmp_path, args, expected):
    args = [str(tmp_path) if a == "EMPTY" else a for a in args]
    code, _, stderr = cli(*args)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], stderr
