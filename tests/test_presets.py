"""The paper's other models (reference code's yamls): TFD, CIFAR-10 fully connected and convolutional."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from advnets.config import ConvMaxoutConfig, override
from advnets.data import load_dataset, to_display
from advnets.errors import ConfigError
from advnets.nets import ConvMaxout, Discriminator, Generator
from advnets.presets import PRESETS
from advnets.train import Trainer


def _linears(g):
    return [tuple(m.weight.shape) for m in g.net if isinstance(m, torch.nn.Linear)]


def test_tfd_preset_is_the_reference_model():
    cfg = PRESETS["tfd"]
    g, d = Generator(cfg.generator, (1, 48, 48)), Discriminator(cfg.discriminator, (1, 48, 48))
    assert _linears(g) == [(8000, 100), (8000, 8000), (2304, 8000)]
    assert [type(m).__name__ for m in g.net][1::2] == ["ReLU", "Sigmoid", "Sigmoid"]
    assert [(m.units, m.pieces) for m in d.hidden] == [(1200, 5), (1200, 5)]
    assert cfg.optim.lr == 0.05 and cfg.train.batch_size == 100
    assert cfg.generator.max_col_norm == cfg.discriminator.max_col_norm == 1.9365


def test_cifar10_mlp_preset_has_a_linear_output_initialised_wider():
    cfg = PRESETS["cifar10-mlp"]
    g = Generator(cfg.generator, (3, 32, 32))
    assert _linears(g) == [(8000, 100), (8000, 8000), (3072, 8000)]
    assert type(g.net[-1]).__name__ == "Identity"  # linear output
    assert 0.49 < g.output.weight.abs().max() <= 0.5 and g.net[0].weight.abs().max() <= 0.05
    d = Discriminator(cfg.discriminator, (3, 32, 32))
    assert [(m.units, m.pieces) for m in d.hidden] == [(1600, 5), (1600, 5)]
    assert (cfg.optim.lr, cfg.data.preprocess) == (0.025, "gcn")


def test_cifar10_conv_preset_shapes_follow_the_output_size_arithmetic():
    cfg = PRESETS["cifar10-conv"]
    g, d = Generator(cfg.generator, (3, 32, 32)), Discriminator(cfg.discriminator, (3, 32, 32))
    deconv = g.output
    assert isinstance(deconv, torch.nn.ConvTranspose2d)
    assert (deconv.in_channels, deconv.out_channels, deconv.kernel_size, deconv.stride) == (80, 3, (5, 5), (3, 3))
    # (10 - 1) * 3 + 5 = 32: no padding is needed to reach 32 x 32
    assert g(torch.zeros(2, 100)).shape == (2, 3 * 32 * 32)
    h = torch.zeros(1, 3, 32, 32)
    shapes = []
    for layer in d.conv:
        h = layer(h)
        shapes.append(tuple(h.shape[1:]))
    # 32 +2*4 -8 +1 = 33, pool 4/2 -> 15; 15 +6 -8 +1 = 14 -> 6; 6 +6 -5 +1 = 8, pool 2/2 -> 4
    assert shapes == [(32, 15, 15), (32, 6, 6), (192, 4, 4)]
    assert [(m.units, m.pieces) for m in d.hidden] == [(500, 5)]
    assert (cfg.optim.lr, cfg.train.batch_size) == (0.004, 128)
    assert d(torch.rand(3, 3 * 32 * 32)).shape == (3,)


def test_conv_maxout_is_max_over_pieces_then_max_pooling():
    layer = ConvMaxout(2, ConvMaxoutConfig(channels=3, pieces=4, kernel=3, padding=1, pool=2, pool_stride=2))
    x = torch.randn(2, 2, 6, 6)
    z = torch.nn.functional.conv2d(x, layer.conv.weight, layer.conv.bias, padding=1)
    expected = torch.stack([z[:, 4 * c : 4 * c + 4].max(dim=1).values for c in range(3)], dim=1)
    expected = torch.nn.functional.max_pool2d(expected, 2, 2)
    torch.testing.assert_close(layer(x), expected)


def test_a_deconv_that_cannot_reach_the_image_size_is_a_clear_error():
    cfg = override(PRESETS["cifar10-conv"].generator, deconv_stride=2)
    with pytest.raises(ConfigError, match="gives 23x23 images; the data are 32x32"):
        Generator(cfg, (3, 32, 32))


def _write_folder(root, n, size, mode):
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (size, size) if mode == "L" else (size, size, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / f"{i:03d}.png")


def _smoke(cfg, dataset, steps=2):
    cfg = override(cfg, train=override(cfg.train, epochs=1, batch_size=8))
    tr = Trainer(cfg, dataset)
    g0 = next(tr.g.parameters()).detach().clone()
    for _ in range(steps):
        out = tr.train_step()
    assert all(torch.isfinite(v) for v in out.values())
    assert not torch.equal(g0, next(tr.g.parameters()))
    return tr


@pytest.mark.parametrize("preset", ["cifar10-mlp", "cifar10-conv"])
def test_cifar_presets_train_on_an_image_folder_of_32x32_rgb(tmp_path, preset):
    _write_folder(tmp_path / "imgs", 40, 32, "RGB")
    cfg = PRESETS[preset]
    cfg = override(cfg, data=override(cfg.data, source=f"folder:{tmp_path / 'imgs'}"))
    data = load_dataset(cfg.data)
    assert data.image_shape == (3, 32, 32)
    flat = data.train.reshape(len(data.train), -1)
    # global contrast normalisation (scale 55): zero mean, L2 norm 55 per image
    torch.testing.assert_close(flat.mean(dim=1), torch.zeros(len(flat)), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.norm(dim=1), torch.full((len(flat),), 55.0), rtol=1e-4, atol=0)
    shown = to_display(data.train[:4], data.preprocess)
    assert shown.min() == 0 and shown.max() == 1
    _smoke(cfg, data)


def test_tfd_preset_trains_on_a_mat_file_in_the_reference_layout(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    n = 60
    folds = np.zeros((n, 5), dtype=np.int32)  # 0 unlabeled, 1 train, 2 valid, 3 test
    folds[40:48], folds[48:54], folds[54:] = 1, 2, 3
    savemat(
        tmp_path / "TFD_48x48.mat",
        {
            "images": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
            "folds": folds,
            "labs_ex": np.zeros((n, 1)),
            "labs_id": np.zeros((n, 1)),
        },
    )
    cfg = PRESETS["tfd"]
    cfg = override(cfg, data=override(cfg.data, source=f"tfd:{tmp_path / 'TFD_48x48.mat'}"))
    data = load_dataset(cfg.data)
    assert (len(data.train), len(data.valid), len(data.test)) == (40, 6, 6)  # unlabeled / valid / test of fold 0
    assert data.image_shape == (1, 48, 48) and 0 <= data.train.min() and data.train.max() <= 1
    tr = _smoke(cfg, data, steps=1)
    for m in [*tr.g.modules(), *tr.d.modules()]:  # the max column norm holds after an update
        if isinstance(m, torch.nn.Linear):
            assert m.weight.norm(dim=1).max() <= 1.9365 + 1e-4


@pytest.mark.slow  # the convolutional CIFAR-10 nets (~30 s)
def test_cifar10_conv_end_to_end_from_python_batches(tmp_path):
    import subprocess
    import sys

    batches = tmp_path / "cifar" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        doc = {b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 6))}
        (batches / name).write_bytes(pickle.dumps(doc))
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "advnets",
            "train",
            "--preset",
            "cifar10-conv",
            "--data",
            str(tmp_path / "cifar"),
            "--valid-size",
            "10",
            "--batch-size",
            "10",
            "--epochs",
            "1",
            "--out",
            str(run_dir),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000002.pt"
    grid = Image.open(sorted((run_dir / "samples").glob("*.png"))[-1])
    assert grid.mode == "RGB"
