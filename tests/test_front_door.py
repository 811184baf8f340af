"""What a newcomer met on the way in (issue 30, "small inconsistencies"): every command's --help has a description
and examples, `sample --class K` names the class in its file, Figure 2's neighbour column is set apart by a bar
of colour, Figure 2 and its memorisation check share one seed, the two MNIST scores are named apart, and
`folder:~/...` is the home directory. (One "not an advnets run" message: tests/test_load_refusals.py; the
--pretrained outputs' place: tests/test_cli_pretrained.py.)"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advnets.cli import build_parser
from advnets.config import DataConfig, override
from advnets.data import load_dataset
from advnets.errors import DataError
from advnets.evaluate.classifier import class_coverage, load_or_train_classifier
from advnets.evaluate.nearest import memorization_stats
from advnets.figures import SEPARATOR_RGB
from advnets.generators import load_generator
from advnets.runs import create_run
from advnets.train import Trainer
from conftest import cli_in_process, tiny_config
from test_load_refusals import COMMANDS_TAKING_A_RUN


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) for the top level and every subcommand, nested ones (data list/fetch) included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))


def test_every_command_s_help_has_a_description_and_examples_that_call_it():
    seen = []
    for words, parser in _subcommands(build_parser()):
        name = " ".join(("advnets", *words))
        assert parser.description and len(parser.description) > 40, f"{name}: no description"
        epilog = parser.epilog or ""
        assert epilog.startswith("examples:\n"), f"{name}: no examples section"
        calls = [line.strip() for line in epilog.splitlines()[1:] if line.strip()]
        assert calls and all(c.startswith("advnets ") for c in calls), f"{name}: {calls}"
        assert any(c.startswith(name + " ") or c == name for c in calls), f"{name}: no example of itself"
        seen.append(name)
    assert {"advnets data fetch", "advnets data list", "advnets sample"} <= set(seen)


def test_every_command_that_takes_a_run_is_checked_on_a_folder_that_is_not_one():
    """tests/test_load_refusals.py gives each command that takes a run a folder that is not one; a new command
    with --run (or a --branch-from) must join that list."""
    takes_a_run = {
        words[0]
        for words, parser in _subcommands(build_parser())
        if words and any(set(a.option_strings) & {"--run", "--branch-from"} for a in parser._actions)
    }
    assert takes_a_run and takes_a_run <= {command[0] for command in COMMANDS_TAKING_A_RUN}


# --------------------------------------------------------------------------- runs to draw from


def _run(tmp_path_factory, digits, name: str, conditional: bool = False):
    cfg = tiny_config(epochs=1, sample_every=1000, monitor_every=0)
    cfg = override(cfg, data=override(cfg.data, source="embedded-digits"))
    if conditional:
        cfg = override(
            cfg,
            generator=override(cfg.generator, condition="class", cond_dim=10),
            discriminator=override(cfg.discriminator, cond_dim=10),
        )
    run_dir = create_run(cfg, digits, tmp_path_factory.mktemp(name) / "run")
    Trainer(cfg, digits).fit(run_dir=run_dir, progress=False, tensorboard=False)
    return run_dir


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, digits):
    return _run(tmp_path_factory, digits, "plain")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, digits):
    return _run(tmp_path_factory, digits, "conditional", conditional=True)


def test_sample_class_names_the_class_and_leaves_the_all_class_grid_alone(conditional_run):
    samples = conditional_run / "samples"
    code, out, err = cli_in_process("sample", "--run", conditional_run, "-n", 16)
    assert code == 0, err
    every_class = (samples / "sample-seed0.png").read_bytes()
    for k in (3, 7):
        code, out, err = cli_in_process("sample", "--run", conditional_run, "--class", k, "-n", 16)
        assert code == 0 and f"-> {samples / f'sample-class{k}-seed0.png'}" in out, (out, err)
    assert (samples / "sample-seed0.png").read_bytes() == every_class
    threes, sevens = (Image.open(samples / f"sample-class{k}-seed0.png") for k in (3, 7))
    assert np.asarray(threes).tobytes() != np.asarray(sevens).tobytes()
    # --class with a figure it cannot change is refused rather than ignored
    for figure in ("--nearest", "--interpolate"):
        code, _, err = cli_in_process("sample", "--run", conditional_run, "--class", 3, figure)
        assert code == 2 and "--class works with plain sample grids" in err, err


# --------------------------------------------------------------------------- Figure 2


def _bars(png) -> list[tuple[int, int]]:
    """The runs of whole pixel columns [start, stop) of the picture that are entirely SEPARATOR_RGB."""
    rgb = np.asarray(Image.open(png).convert("RGB"))
    full = np.all(rgb == np.array(SEPARATOR_RGB, dtype=np.uint8), axis=(0, 2))
    runs, start = [], None
    for x, on in enumerate([*full, False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            runs.append((start, x))
            start = None
    return runs


def _assert_one_bar_before_the_last_column(png, image_width: int) -> None:
    """One bar of SEPARATOR_RGB, top to bottom, just before the last column of images (``image_width`` pixels
    wide, then the outer margin); nothing else in the picture has that colour (the samples are grey)."""
    rgb = np.asarray(Image.open(png).convert("RGB"))
    bars = _bars(png)
    assert len(bars) == 1, bars
    start, stop = bars[0]
    margin = stop - start  # the gap between images, here filled, is as wide as the outer margin
    assert stop + image_width + margin == rgb.shape[1], (bars, rgb.shape)
    elsewhere = np.delete(rgb, np.s_[start:stop], axis=1)
    assert (elsewhere[..., 0] == elsewhere[..., 1]).all() and (elsewhere[..., 1] == elsewhere[..., 2]).all()


def test_sample_nearest_sets_the_neighbour_column_apart_with_a_bar(plain_run, tmp_path):
    out = tmp_path / "fig2.png"
    code, text, err = cli_in_process(
        "sample", "--run", plain_run, "--nearest", "-n", 9, "--check-size", 50, "--out", out
    )
    assert code == 0, err
    _assert_one_bar_before_the_last_column(out, image_width=8 * 2)  # 8x8 digits drawn at zoom 2


def test_the_report_s_figure2_has_the_bar_and_its_memorisation_check_uses_figure2_s_seed(plain_run, digits):
    from advnets.report import write_report

    html, md = write_report(plain_run, seed=3, check_size=200)
    _assert_one_bar_before_the_last_column(plain_run / "report_files" / "figure2-nearest.png", image_width=8 * 8)
    text = md.read_text(encoding="utf-8")
    assert "Figure 2: fair random samples (seed 3)" in text
    assert "samples of G (seed 3, as Figure 2)" in text and "seed 4" not in text
    # The table's numbers are those of seed 3's samples (an independent computation of the same check).
    model = load_generator(plain_run)
    n = min(200, len(digits.test))  # the check takes at most the test split (179 of the 8x8 digits)
    expected = memorization_stats(model.sample(n, 3), digits.train, digits.test[:n])
    assert f"| samples of G | {n} | {expected['samples']['median']:.3f} |" in text, text


def test_sample_nearest_checks_the_samples_of_its_own_seed(plain_run, tmp_path, digits):
    out = tmp_path / "fig2.png"
    code, _, err = cli_in_process(
        "sample", "--run", plain_run, "--nearest", "--seed", 5, "--check-size", 100, "--out", out
    )
    assert code == 0, err
    check = json.loads(out.with_suffix(".json").read_text())
    assert check["seed"] == 5
    model = load_generator(plain_run)
    expected, before = (
        memorization_stats(model.sample(100, seed), digits.train, digits.test[:100]) for seed in (5, 6)
    )  # 6: the seed the check used to take (seed + 1)
    assert check["memorization"]["samples"]["mean"] == pytest.approx(expected["samples"]["mean"], abs=1e-12)
    assert check["memorization"]["samples"]["mean"] != pytest.approx(before["samples"]["mean"], abs=1e-12)


# --------------------------------------------------------------------------- the two MNIST scores


@pytest.mark.slow  # trains the run's digit classifier: ~45 s on a loaded 2-core machine
def test_classes_and_metrics_name_their_mnist_scores_apart_and_each_is_its_classifier_s(plain_run, tmp_path):
    """One formula (class_coverage), two classifiers: `classes` uses one trained on the run's data, `evaluate
    --metrics mnist_score` the shipped digit network. Each printed number is recomputed here with its own
    classifier; they are different numbers and the output says which is which."""
    from advnets.evaluate.metrics import classifier_metrics

    data_dir = tmp_path / "data"
    code, out, err = cli_in_process("classes", "--run", plain_run, "-n", 300, "--data-dir", data_dir)
    assert code == 0, err
    line = next(line for line in out.splitlines() if "MNIST score" in line)
    assert line.startswith("MNIST score with this run's classifier ") and "shipped digit network instead" in line
    printed = float(re.search(r"classifier ([0-9.]+);", line).group(1))
    doc = json.loads((plain_run / "classes.json").read_text())
    assert "trained on embedded-digits's training split" in doc["mnist_score_classifier"]

    model = load_generator(plain_run)
    samples = model.sample(300, 0)
    own = load_or_train_classifier(model.load_data(), data_dir / "classifiers")  # the cached one, not retrained
    run_score = class_coverage(own, samples.clamp(0, 1))["mnist_score"]
    assert printed == pytest.approx(run_score, abs=0.005)
    assert doc["coverage"]["mnist_score"] == pytest.approx(run_score, abs=1e-12)

    quality = tmp_path / "q.json"
    args = ("--run", plain_run, "--metrics", "mnist_score", "--num-samples", 300, "--no-context", "--out", quality)
    code, out, err = cli_in_process("evaluate", *args)
    assert code == 0, err
    metric = json.loads(quality.read_text())["rows"][model.label]["mnist_score"]
    assert metric == pytest.approx(classifier_metrics(None, samples)["mnist_score"], abs=1e-9)
    # This tiny G draws one digit (both scores near 1); on the real test digits the two classifiers give two
    # numbers for the same images, which is why they carry two names.
    real = model.load_data().test
    assert class_coverage(own, real)["mnist_score"] != pytest.approx(
        classifier_metrics(None, real)["mnist_score"], abs=0.01
    )


# --------------------------------------------------------------------------- ~ after folder:


def test_folder_and_tfd_sources_expand_a_leading_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    sprites = tmp_path / "sprites"
    sprites.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(sprites / f"s{i:02d}.png")
    data = load_dataset(DataConfig(source="folder:~/sprites", image_size=8, channels=1))
    assert data.name == "folder:sprites" and tuple(data.image_shape) == (1, 8, 8)
    assert len(data.train) + len(data.valid) + len(data.test) == 12
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'TFD_48x48.mat'} does not exist")):
        load_dataset("tfd:~/TFD_48x48.mat")
    code, _, err = cli_in_process("train", "--data", "folder:~/missing", "--image-size", 8, "--out", tmp_path / "r")
    assert code == 2 and str(tmp_path / "missing") in err and "~" not in err, err


# --------------------------------------------------------------------------- make demo installs the runtime only


def _make_plan(target: str, tmp_path) -> str:
    """The commands `make TARGET` would run in a fresh checkout with no virtualenv (make -n: none are run)."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["make", "-n", "-C", str(root), target, f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_demo_installs_the_runtime_only_and_make_test_adds_the_dev_extras(tmp_path):
    demo, test = _make_plan("demo", tmp_path), _make_plan("test", tmp_path)
    installs = [line for line in demo.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all(line.rstrip().endswith("-e .") for line in installs), demo
    assert "[dev]" not in demo and "advnets train" in demo
    assert "-e '.[dev]'" in test and "pytest" in test
