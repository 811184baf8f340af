"""`advnets sample --pretrained` and `advnets evaluate --pretrained` (issue 15), on a tiny 8x8-digits model
exported into tmp and entered in the real REGISTRY dict for the test (the shipped registry is empty for now)."""

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest
from PIL import Image

from advnets import pretrained
from advnets.checkpoint import latest_checkpoint
from advnets.evaluate.parzen import parzen_evaluate
from advnets.generators import load_generator
from advnets.pretrained import PretrainedModel, export_pretrained
from advnets.train import Trainer
from conftest import cli_in_process, tiny_config

M, VALID = 300, 100  # the tiny entry's protocol: samples of G and validation images that choose sigma


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, digits):
    """A tiny run exported as a pretrained file, and its number by the reference protocol (parzen_evaluate)."""
    d = tmp_path_factory.mktemp("pretrained")
    Trainer(tiny_config(epochs=1, monitor_every=0), digits).fit(d / "run", progress=False, tensorboard=False)
    ckpt = latest_checkpoint(d / "run")
    out = export_pretrained(ckpt, d / "tiny.safetensors")
    samples = load_generator(ckpt).sample(M, 0)
    ref = parzen_evaluate(digits.test, samples, valid=digits.valid[:VALID], sigmas=np.logspace(-1, 0, 10))
    return out, ref


def _entry(path, ref, name="tiny"):
    data = path.read_bytes()
    return PretrainedModel(
        name=name,
        file=str(path),  # absolute: ASSETS_DIR / file is then the file itself
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        dataset="embedded-digits",
        preset="mnist",
        seed=0,
        epochs=1,
        step=0,
        parzen_ll=ref["mean"],
        parzen_se=ref["se"],
        sigma=ref["sigma"],
        num_samples=M,
        valid_size=VALID,
    )


@pytest.fixture
def tiny(shipped, monkeypatch):
    out, ref = shipped
    monkeypatch.setitem(pretrained.REGISTRY, "tiny", _entry(out.path, ref))
    return ref


def test_evaluate_pretrained_reproduces_the_stated_number(tiny, tmp_path):
    out = tmp_path / "r.json"
    code, text, err = cli_in_process("evaluate", "--pretrained", "tiny", "--data", "embedded-digits", "--out", out)
    assert code == 0, err
    assert f"{tiny['mean']:8.1f} ± {tiny['se']:<6.1f}" in text and "stated (registry)" in text
    diff = float(re.search(r"difference: ([-+0-9.]+) nats", text).group(1))
    assert abs(diff) < 1e-3
    doc = json.loads(out.read_text())
    assert doc["result"]["mean"] == pytest.approx(tiny["mean"], abs=1e-9)
    assert doc["result"]["sigma"] == tiny["sigma"] and doc["protocol"]["num_samples"] == M
    assert doc["protocol"]["valid_size"] == VALID
    assert doc["differs_from_stated"] == [] and "not the stated protocol" not in text
    code, text, err = cli_in_process(
        "evaluate", "--pretrained", "tiny", "--data", "embedded-digits", "--num-samples", "150", "--seed", "4"
    )
    assert code == 0 and "not the stated protocol (samples 150 (stated: 300); seed 4 (stated: 0))" in text, err


def test_evaluate_pretrained_with_baselines_and_metrics(tiny, tmp_path):
    code, text, err = cli_in_process("evaluate", "--pretrained", "tiny", "--data", "embedded-digits", "--baselines")
    assert code == 0, err
    assert "k-means centroids" in text and "Gaussian fit" in text
    out = tmp_path / "q.json"
    args = ("--pretrained", "tiny", "--data", "embedded-digits", "--metrics", "fd,coverage", "--num-samples", 200)
    code, text, err = cli_in_process("evaluate", *args, "--out", out)
    assert code == 0, err
    assert list(json.loads(out.read_text())["rows"])[0] == "tiny"


def test_sample_pretrained_writes_figure2_over_the_data_and_figure3(tiny, tmp_path, digits):
    fig2 = tmp_path / "fig2.png"
    code, text, err = cli_in_process(
        "sample", "--pretrained", "tiny", "--data", "embedded-digits", "--nearest", "-n", 9, "--check-size", 50,
        "--out", fig2,
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(fig2.with_suffix(".json").read_text())
    assert doc["dataset"] == "embedded-digits" and f"nearest of {len(digits.train)} training images" in text
    column = doc["rightmost_column"]  # 9 samples: 3 rows of 3, the nearest training image beside each row
    assert len(column["train_index"]) == 3 and all(0 <= i < len(digits.train) for i in column["train_index"])
    fig3 = tmp_path / "fig3.png"
    code, _, err = cli_in_process(
        "sample", "--pretrained", "tiny", "--interpolate", "--rows", 2, "--steps", 5, "--out", fig3
    )
    assert code == 0, err
    w, h = Image.open(fig3).size
    assert w > h  # 2 paths of 5 images: wider than tall


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("evaluate", "--pretrained", "nope", "--data", "embedded-digits"),
            "no such pretrained model; known: mnist-paper, mnist-paper-1151, mnist-paper-annealed, tiny",
        ),
        (("sample", "--pretrained", "nope"), "known: mnist-paper, mnist-paper-1151, mnist-paper-annealed, tiny"),
        (("evaluate", "--pretrained", "tiny"), "--pretrained needs --data"),
        (("sample", "--pretrained", "tiny", "--nearest"), "needs --data"),
        (("evaluate", "--pretrained", "tiny", "--run", "x", "--data", "embedded"), "not allowed with argument"),
        (("sample", "--pretrained", "tiny", "--run", "x"), "not allowed with argument"),
        (("evaluate", "--pretrained", "tiny", "--data", "embedded"), "images of shape (1, 28, 28)"),
    ],
)
def test_bad_pretrained_input_exits_2_with_one_clear_line(tiny, args, expected):
    code, _, err = cli_in_process(*args)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def test_a_damaged_file_is_refused_naming_it(shipped, monkeypatch, tmp_path):
    out, ref = shipped
    bad = tmp_path / "tiny.safetensors"
    data = bytearray(out.path.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit pattern in the last tensor
    bad.write_bytes(bytes(data))
    # The entry pins the good file's hash; the file it names is the damaged copy.
    monkeypatch.setitem(pretrained.REGISTRY, "tiny", dataclasses.replace(_entry(out.path, ref), file=str(bad)))
    for args in (("sample", "--pretrained", "tiny"), ("evaluate", "--pretrained", "tiny", "--data", "embedded-digits")):
        code, _, err = cli_in_process(*args)
        assert code == 2 and str(bad) in err and "damaged or substituted" in err, err


def test_pretrained_outputs_go_to_the_model_s_own_folder_not_the_current_directory(tiny, tmp_path, monkeypatch):
    """Issue 30: without --out, `sample --pretrained NAME` and `evaluate --pretrained NAME` write under
    DATA_ROOT/pretrained-outputs/NAME/ (as a run's RUN/samples/ and RUN/parzen.json) and say where."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    root = tmp_path / "root"
    monkeypatch.setenv("ADVNETS_DATA", str(root))
    folder = root / "pretrained-outputs" / "tiny"
    code, text, err = cli_in_process("sample", "--pretrained", "tiny", "-n", 16)
    assert code == 0 and f"-> {folder / 'sample-seed0.png'}" in text, err
    code, text, err = cli_in_process(
        "sample", "--pretrained", "tiny", "--data", "embedded-digits", "--nearest", "-n", 9, "--check-size", 50
    )
    assert code == 0 and f"-> {folder / 'nearest-seed0.png'}" in text and f"-> {folder / 'nearest-seed0.json'}" in text
    code, text, err = cli_in_process("evaluate", "--pretrained", "tiny", "--data", "embedded-digits")
    assert code == 0 and f"-> {folder / 'parzen.json'}" in text, err
    assert json.loads((folder / "parzen.json").read_text())["result"]["mean"] == pytest.approx(tiny["mean"], abs=1e-9)
    assert sorted(p.name for p in folder.iterdir()) == [
        "nearest-seed0.json", "nearest-seed0.png", "parzen.json", "sample-seed0.png"
    ]  # fmt: skip
    assert list(cwd.iterdir()) == []
    # --data-dir moves the place as it moves the datasets; --out still wins
    code, text, err = cli_in_process("sample", "--pretrained", "tiny", "--data-dir", tmp_path / "elsewhere")
    assert code == 0 and (tmp_path / "elsewhere" / "pretrained-outputs" / "tiny" / "sample-seed0.png").is_file(), err
    code, _, err = cli_in_process("sample", "--pretrained", "tiny", "--out", "here.png")
    assert code == 0 and (cwd / "here.png").is_file(), err
    # a mistyped name makes no folder
    code, _, err = cli_in_process("evaluate", "--pretrained", "nope", "--data", "embedded-digits")
    assert code == 2 and "no such pretrained model" in err and not (root / "pretrained-outputs" / "nope").exists()


def test_the_help_of_sample_and_evaluate_states_where_pretrained_outputs_go():
    for command in ("sample", "evaluate"):
        code, text, _ = cli_in_process(command, "--help")
        flat = re.sub(r"-\s+", "-", " ".join(text.split()))  # argparse wraps lines after a hyphen
        assert code == 0, text
        assert "--pretrained NAME: DATA_ROOT/pretrained-outputs/NAME/" in flat and "never the current directory" in flat
