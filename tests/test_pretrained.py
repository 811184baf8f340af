"""Shipped pretrained models (issue 15): export a run's checkpoint, load it by name with its hash checked."""

import hashlib
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advnets.checkpoint import latest_checkpoint
from advnets.errors import AdvnetsError, CheckpointError, DataError
from advnets.evaluate.parzen import parzen_evaluate
from advnets.evaluate.scoring import evaluate_pretrained
from advnets.generators import load_generator
from advnets.pretrained import (
    FORMAT,
    PretrainedModel,
    export_pretrained,
    get_entry,
)
from advnets.train import Trainer
from conftest import tiny_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    """A tiny run on the 8x8 digits with one checkpoint."""
    run_dir = tmp_path_factory.mktemp("run")
    Trainer(tiny_config(epochs=1), digits).fit(run_dir, progress=False, tensorboard=False)
    return run_dir


def _entry(name, path, **kw):
    data = path.read_bytes()
    fields = dict(
        name=name,
        file=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        dataset="embedded-digits",
        preset="mnist",
        seed=0,
        epochs=1,
        step=0,
        parzen_ll=0.0,
        parzen_se=0.0,
        sigma=0.1,
    )
    return PretrainedModel(**{**fields, **kw})


def test_exported_model_reproduces_g_bit_for_bit(run, tmp_path):
    ckpt = latest_checkpoint(run)
    out = export_pretrained(ckpt, tmp_path / "tiny.safetensors")
    data = out.path.read_bytes()
    assert out.sha256 == hashlib.sha256(data).hexdigest() and out.size_bytes == len(data)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]  # atomic: no temporary left behind
    registry = {"tiny": _entry("tiny", out.path)}
    loaded = load_generator(pretrained="tiny", registry=registry, assets_dir=tmp_path)
    original = load_generator(ckpt)
    assert loaded.config == original.config and loaded.image_shape == original.image_shape
    assert loaded.metadata["format"] == FORMAT and loaded.step == original.step and loaded.label == "tiny"
    assert not loaded.generator.training  # eval mode, as from a checkpoint
    d0 = original.discriminator
    assert torch.equal(loaded.sample(300, 7), original.sample(300, 7))
    x = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.discriminator(x.reshape(50, -1)), d0(x.reshape(50, -1)))


def test_g_only_file_has_no_discriminator(run, tmp_path):
    out = export_pretrained(latest_checkpoint(run), tmp_path / "g.safetensors", include_discriminator=False)
    full = export_pretrained(latest_checkpoint(run), tmp_path / "gd.safetensors")
    assert out.size_bytes < full.size_bytes
    assert load_generator(out.path).discriminator is None


def test_a_damaged_copy_is_refused_naming_the_file_and_the_expected_hash(run, tmp_path):
    out = export_pretrained(latest_checkpoint(run), tmp_path / "tiny.safetensors")
    registry = {"tiny": _entry("tiny", out.path)}
    data = bytearray(out.path.read_bytes())
    data[-3] ^= 0x01  # one bit of one weight
    out.path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"tiny\.safetensors: damaged .*expected {out.sha256}"):
        load_generator(pretrained="tiny", registry=registry, assets_dir=tmp_path)


def test_a_missing_file_is_a_clear_error(tmp_path):
    entry = PretrainedModel("gone", "gone.safetensors", "ab" * 32, 1, "mnist", "mnist", 0, 1, 1, 0.0, 0.0, 0.1)
    with pytest.raises(CheckpointError, match=r"gone\.safetensors: pretrained model file is missing .*abab"):
        load_generator(pretrained="gone", registry={"gone": entry}, assets_dir=tmp_path)


def test_an_unknown_name_lists_the_known_ones(tmp_path):
    entry = PretrainedModel("a", "a.safetensors", "00" * 32, 1, "mnist", "mnist", 0, 1, 1, 0.0, 0.0, 0.1)
    with pytest.raises(AdvnetsError, match=r"--pretrained nope: no such pretrained model; known: a, b"):
        get_entry("nope", {"b": entry, "a": entry})
    with pytest.raises(AdvnetsError, match="none are shipped"):
        get_entry("nope", {})


def test_a_file_that_is_not_an_export_is_refused(run, tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match=r"other\.safetensors: expected a file made by advnets\.pretrained"):
        load_generator(tmp_path / "other.safetensors")
    out = export_pretrained(latest_checkpoint(run), tmp_path / "cut.safetensors")
    out.path.write_bytes(out.path.read_bytes()[:-100])  # no hash to check: the format itself must catch it
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: cannot rebuild the nets: SafetensorError"):
        load_generator(out.path)
    (tmp_path / "junk.safetensors").write_bytes(b"\x05")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a safetensors file"):
        load_generator(tmp_path / "junk.safetensors")


def test_evaluate_pretrained_runs_the_reference_protocol_on_samples_from_a_fixed_seed(run, tmp_path, digits):
    out = export_pretrained(latest_checkpoint(run), tmp_path / "tiny.safetensors")
    registry = {"tiny": _entry("tiny", out.path, parzen_ll=1.5, num_samples=400, sample_seed=3, valid_size=100)}
    res = evaluate_pretrained("tiny", "embedded-digits", registry=registry, assets_dir=tmp_path)
    # The same protocol by hand from the checkpoint: 400 samples with seed 3, sigma on 100 validation images.
    samples = load_generator(latest_checkpoint(run)).sample(400, 3)
    direct = parzen_evaluate(digits.test, samples, valid=digits.valid[:100])
    assert res["result"]["mean"] == direct["mean"] and res["result"]["sigma"] == direct["sigma"]
    assert res["result"]["n"] == len(digits.test) and res["protocol"]["valid_size"] == 100
    assert math.isclose(res["difference"], direct["mean"] - 1.5)
    assert res["expected"] == {"mean": 1.5, "se": 0.0, "sigma": 0.1}


def test_data_of_another_image_shape_is_refused(run, tmp_path):
    out = export_pretrained(latest_checkpoint(run), tmp_path / "tiny.safetensors")
    registry = {"tiny": _entry("tiny", out.path)}
    with pytest.raises(DataError, match=r"--data embedded: images of shape \(1, 28, 28\), but tiny.safetensors draws"):
        evaluate_pretrained("tiny", "embedded", registry=registry, assets_dir=tmp_path)


def test_export_script_prints_hash_and_size(run, tmp_path):
    out = tmp_path / "m.safetensors"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "export_pretrained.py"), str(run), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in proc.stdout and f"size {out.stat().st_size} bytes" in proc.stdout
    bad = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "export_pretrained.py"), str(tmp_path / "nowhere"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "nowhere" in bad.stderr
