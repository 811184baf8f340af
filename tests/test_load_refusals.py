"""What the one load path (advnets.checkpoint) refuses, and that every command says it the same way (issue 26,
findings 6 and 7): non-finite weights, a checkpoint from a newer advnets, a folder that is not a run."""

import hashlib
import json
import re
import shutil

import pytest
import torch

from advnets import __version__
from advnets.checkpoint import latest_checkpoint, load_checkpoint
from advnets.config import override
from advnets.errors import CheckpointError
from advnets.generators import load_generator
from advnets.runs import create_run
from advnets.train import Trainer
from conftest import cli_in_process, tiny_config

NOT_A_RUN = "is not an advnets run: it has neither config.json nor checkpoints/latest"


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, digits):
    """A tiny run (create_run + Trainer.fit, the layout `advnets train` makes) with one checkpoint."""
    cfg = tiny_config(epochs=1, sample_every=1000)
    cfg = override(cfg, data=override(cfg.data, source="embedded-digits"))
    run_dir = create_run(cfg, digits, tmp_path_factory.mktemp("refusals") / "run")
    Trainer(cfg, digits).fit(run_dir=run_dir, progress=False, tensorboard=False)
    return run_dir


def _rewrite(run_dir, change):
    """Apply ``change`` to the state of ``run_dir``'s latest checkpoint and save it with a recomputed .sha256,
    so only the content (not the hash check) can refuse it; returns the checkpoint's path."""
    path = latest_checkpoint(run_dir)
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)
    path.with_suffix(".sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "\n")
    return path


def _poison(state):
    """Three NaN in G's first layer, one infinity in D's output bias."""
    name = next(iter(state["generator"]))
    state["generator"][name].view(-1)[:3] = float("nan")
    state["discriminator"]["output.bias"].view(-1)[0] = float("inf")
    state["poisoned"] = name  # the tensor's name, for the test


@pytest.fixture(scope="module")
def bad_run(good_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("refusals") / "bad"
    shutil.copytree(good_run, run_dir)
    _rewrite(run_dir, _poison)
    return run_dir


def _bad_tensor_said(err, bad_run):
    state = torch.load(latest_checkpoint(bad_run), weights_only=True)
    said = f"G: {state['poisoned']} holds 3 NaN values; D: output.bias holds 1 infinite value"
    return said in err and latest_checkpoint(bad_run).name in err


@pytest.mark.parametrize(
    "command",
    [
        ["sample", "--run", "{run}", "-n", "4"],
        ["evaluate", "--run", "{run}", "--num-samples", "50", "--no-progress"],
        ["report", "--run", "{run}"],
        ["classes", "--run", "{run}"],
        ["train", "--out", "{run}", "--resume", "--epochs", "2", "--no-progress"],
        ["train", "--branch-from", "{run}", "--out", "{new}", "--epochs", "2", "--no-progress"],
    ],
    ids=["sample", "evaluate", "report", "classes", "resume", "branch-from"],
)
def test_a_checkpoint_with_nonfinite_weights_is_refused_by_every_command_naming_the_tensor(bad_run, tmp_path, command):
    before = {p.relative_to(bad_run): p.read_bytes() for p in bad_run.rglob("*") if p.is_file()}
    args = [a.format(run=bad_run, new=tmp_path / "branch") for a in command]
    code, out, err = cli_in_process(*args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "non-finite weights" in lines[0] and _bad_tensor_said(lines[0], bad_run), err
    after = {p.relative_to(bad_run): p.read_bytes() for p in bad_run.rglob("*") if p.is_file()}
    assert after == before  # nothing written: no PNG, no report, no resume recorded in config.json
    assert not (tmp_path / "branch").exists()


def test_the_python_loaders_refuse_nonfinite_weights_naming_tensor_and_file(bad_run, good_run, tmp_path):
    from safetensors.torch import load, save

    from advnets.pretrained import export_pretrained

    for load_it in (lambda: load_checkpoint(latest_checkpoint(bad_run)), lambda: load_generator(bad_run)):
        with pytest.raises(CheckpointError, match=r"output\.bias holds 1 infinite value") as e:
            load_it()
        assert str(latest_checkpoint(bad_run)) in str(e.value)
    # A shipped-model file (safetensors) goes through the same check.
    exported = export_pretrained(latest_checkpoint(good_run), tmp_path / "model.safetensors").path
    data = exported.read_bytes()
    n = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + n])["__metadata__"]
    tensors = load(data)
    name = next(k for k in tensors if k.startswith("generator."))
    tensors[name].view(-1)[:2] = float("-inf")
    exported.write_bytes(save(tensors, metadata=metadata))
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(exported))} .*G: {name[10:]} holds 2 infinite values"):
        load_generator(exported)


def test_a_checkpoint_is_never_written_with_nonfinite_weights(tmp_path, digits):
    """The divergence guard stops training first (tests/test_reliability.py::test_nonfinite_loss_stops_...);
    a save through the API with diverged weights is refused as well, and the previous checkpoint stays latest."""
    tr = Trainer(tiny_config(), digits)
    good = tr.save(tmp_path)
    tr.step += 1
    with torch.no_grad():
        tr.g.output.weight.view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match=r"refusing to write checkpoint .*step-00000001\.pt: G: output\.weight"):
        tr.save(tmp_path)
    assert latest_checkpoint(tmp_path) == good
    left = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert left == sorted([good.name, good.stem + ".sha256", "latest"])  # no piece of the refused one


def _from_a_newer_advnets(version):
    def change(state):
        state["config"]["train"]["ema_decay"] = 0.999  # a field a later version added
        state["version"] = version

    return change


def test_a_checkpoint_from_a_newer_advnets_names_both_versions_and_says_to_upgrade(good_run, tmp_path):
    run_dir = tmp_path / "newer"
    shutil.copytree(good_run, run_dir)
    path = _rewrite(run_dir, _from_a_newer_advnets("99.1.0"))
    for args in (["sample", "--run", run_dir], ["train", "--out", run_dir, "--resume", "--no-progress"]):
        code, _, err = cli_in_process(*args)
        assert code == 2, err
        assert f"{path} was written by advnets 99.1.0, newer than this advnets {__version__}" in err, err
        assert "upgrade advnets" in err and "ema_decay" in err
    # Not newer: the unknown key is still named clearly, with the version that wrote it, and no advice to upgrade.
    _rewrite(run_dir, _from_a_newer_advnets("0.0.1"))
    with pytest.raises(CheckpointError, match=r"unknown key\(s\) in train: ema_decay") as e:
        load_generator(run_dir)
    assert "written by advnets 0.0.1" in str(e.value) and "upgrade" not in str(e.value)


def test_a_pretrained_file_from_a_newer_advnets_says_to_upgrade(good_run, tmp_path):
    from safetensors.torch import load, save

    from advnets.pretrained import export_pretrained

    exported = export_pretrained(latest_checkpoint(good_run), tmp_path / "model.safetensors").path
    data = exported.read_bytes()
    n = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + n])["__metadata__"]
    config = json.loads(metadata["config"])
    config["train"]["ema_decay"] = 0.999
    metadata.update(config=json.dumps(config), advnets_version="99.1.0")
    exported.write_bytes(save(load(data), metadata=metadata))
    with pytest.raises(CheckpointError, match=r"advnets 99\.1\.0, newer than this advnets .*upgrade advnets"):
        load_generator(exported)


COMMANDS_TAKING_A_RUN = [
    ["sample", "--run"],
    ["evaluate", "--run"],
    ["classes", "--run"],
    ["report", "--run"],
    ["infer", "--run"],
    ["inpaint", "--run"],
    ["semisup", "--run"],
    ["explore", "--no-browser", "--port", "0", "--run"],
    ["train", "--data", "embedded-digits", "--out", "{new}", "--branch-from"],
    ["train", "--data", "embedded-digits", "--resume", "--out"],
]


@pytest.mark.parametrize(
    ("command", "folder"),
    [
        (command, folder)
        for command in COMMANDS_TAKING_A_RUN
        for folder in ("empty", "holds other files")
        if not (command[-1] == "--out" and folder == "empty")  # a new run there (tests/test_resume.py)
    ],
    ids=lambda v: " ".join(v[:1] + v[-1:]) if isinstance(v, list) else v,
)
def test_every_command_given_a_folder_that_is_not_a_run_says_the_same(tmp_path, command, folder):
    not_a_run = tmp_path / "photos"
    not_a_run.mkdir()
    if folder == "holds other files":
        (not_a_run / "cat.jpg").write_bytes(b"\xff\xd8")
    args = [a.format(new=tmp_path / "new") for a in command]
    code, _, err = cli_in_process(*args, not_a_run)
    option = command[-1]
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{option} {not_a_run} {NOT_A_RUN}" in lines[0], err
    assert "no checkpoint yet" not in err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", ["sample", "report", "evaluate"])
def test_a_run_with_config_json_but_no_checkpoint_says_no_checkpoint_yet(good_run, tmp_path, command):
    run_dir = tmp_path / "untrained"
    run_dir.mkdir()
    shutil.copy(good_run / "config.json", run_dir / "config.json")
    code, _, err = cli_in_process(command, "--run", run_dir)
    assert code == 2 and f"--run {run_dir}: no checkpoint yet" in err, err
    assert NOT_A_RUN not in err
