"""One loaded generator (advnets.generators): a run, a checkpoint and a shipped file give the same thing,
and the compute options and protocol record every scorer shares (advnets.evaluate.options, .protocol)."""

import pytest
import torch

from advnets.checkpoint import latest_checkpoint
from advnets.errors import CheckpointError, ConfigError, DataError
from advnets.evaluate.options import MetricOptions
from advnets.evaluate.protocol import parzen_record, protocol_settings
from advnets.generators import LoadedGenerator, load_generator
from advnets.pretrained import export_pretrained
from advnets.sampling import generate
from advnets.train import Trainer
from conftest import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    d = tmp_path_factory.mktemp("gen") / "run"
    Trainer(tiny_config(epochs=1, monitor_every=0), digits).fit(d, progress=False, tensorboard=False)
    return d


def test_a_run_its_checkpoint_and_its_export_load_as_the_same_generator(run, tmp_path):
    ckpt = latest_checkpoint(run)
    from_run, from_file = load_generator(run), load_generator(ckpt)
    shipped = load_generator(export_pretrained(ckpt, tmp_path / "tiny.safetensors").path)
    assert all(isinstance(m, LoadedGenerator) for m in (from_run, from_file, shipped))
    assert from_run.source == from_file.source == ckpt and from_run.run_dir == run
    assert shipped.run_dir is None and shipped.source.suffix == ".safetensors" and shipped.label == "tiny"
    for m in (from_run, from_file, shipped):
        assert m.step == 71 and m.image_shape == (1, 8, 8) and not m.generator.training
    assert from_run.label == "adversarial nets (step 71)" and from_run.epoch == pytest.approx(1.0)
    # sample() is advnets.sampling.generate with the model's own shape: the same images from every source
    direct = generate(from_run.generator, 40, 3, (1, 8, 8))
    for m in (from_run, from_file, shipped):
        assert torch.equal(m.sample(40, 3), direct)


def test_load_data_reads_the_models_own_data_and_refuses_another_shape(run):
    model = load_generator(run)
    assert model.load_data().name == "embedded-digits"
    with pytest.raises(DataError, match=r"--data embedded: images of shape \(1, 28, 28\), but step-00000071\.pt"):
        model.load_data("embedded")


def test_a_run_without_a_checkpoint_and_a_missing_source_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such run directory or checkpoint file"):
        load_generator(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="give one of"):
        load_generator()
    with pytest.raises(ConfigError, match="give one of"):
        load_generator(tmp_path, pretrained="mnist-paper")


def test_metric_options_expand_to_the_metric_keywords_and_refuse_other_dtypes():
    opts = MetricOptions(dtype=torch.float32, device="cpu", max_bytes=1 << 20, progress=True)
    assert opts.kwargs() == {
        "dtype": torch.float32,
        "device": "cpu",
        "chunk_size": None,
        "sample_chunk_size": None,
        "max_bytes": 1 << 20,
        "progress": True,
    }
    assert opts.kwargs(progress=False)["progress"] is False and opts.dtype_name == "float32"
    with pytest.raises(DataError, match="float64 or torch.float32"):
        MetricOptions(dtype=torch.float16)


def test_the_protocol_record_is_built_once_with_one_spelling_of_dtype():
    settings = protocol_settings(num_samples=10, seed=2, sigmas=[0.1, 0.2], valid_size=5, split="valid")
    assert settings == {
        "num_samples": 10,
        "seed": 2,
        "sigmas": [0.1, 0.2],
        "valid_size": 5,
        "split": "valid",
        "dtype": "float64",
    }
    result = {"valid_size": 5, "dataset": "d", "step": 1, "rows": {}}
    record = parzen_record(result, num_samples=10, split="valid", seed=2, sigmas=[0.1, 0.2])
    assert {k: v for k, v in record["protocol"].items() if k != "se"} == settings
