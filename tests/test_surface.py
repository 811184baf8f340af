"""The package's surface: the command line's options (unchanged by the split into cli/), the
train options table and its mapping to the config, the public names, and run directories
made through the Python API."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import advnets
import advnets.evaluate
from advnets.cli.common import decay_factor, nonneg_float, nonneg_int, positive_float, positive_int, seed_int
from advnets.cli.train import OPTIONS, config_from_argv
from advnets.config import RunConfig, override
from advnets.errors import AdvnetsError, ConfigError
from advnets.presets import PRESETS, train_config_from_options
from conftest import cli_in_process, tiny_config

README = Path(__file__).resolve().parent.parent / "README.md"

# The options of every command, captured from the single-file cli.py before it became the
# cli/ package (issue 16): the split must not add, drop or rename any.
ORIGINAL_OPTIONS = {
    "": ["--debug", "--version"],
    "train": [
        "--batch-size", "--channels", "--checkpoint-every", "--conditional", "--d-lr-scale", "--data", "--data-dir",
        "--device", "--dry-run", "--epochs", "--g-loss", "--image-size", "--inpaint", "--instance-noise", "--k",
        "--log-every", "--lr", "--max-restarts", "--monitor-classes", "--monitor-every", "--no-progress", "--nproc",
        "--on-collapse", "--optimizer", "--out", "--precision", "--preset", "--real-label", "--resume",
        "--sample-every", "--seed", "--skip-nonfinite", "--update", "--valid-size",
    ],
    "sample": [
        "--check-size", "--class", "--data-dir", "--interpolate", "--nearest", "--out", "--rows", "--run", "--seed",
        "--spherical", "--steps", "-n",
    ],
    "evaluate": [
        "--baselines", "--data-dir", "--device", "--float32", "--folds", "--json", "--no-progress", "--num-samples",
        "--run", "--samples", "--seed", "--sigmas", "--split", "--test", "--valid", "--valid-size",
    ],
    "inpaint": ["--completions", "--data-dir", "--eval-size", "--input", "--mask", "--out", "--run", "--seed", "-n"],
    "classes": ["--data-dir", "--out", "--run", "--seed", "-n"],
    "toy": ["--dataset", "--g-steps-per-d", "--gif", "--out", "--seed", "--steps"],
    "report": ["--check-size", "--out", "--run", "--seed", "-n"],
    "data": [],
    "data list": ["--data-dir"],
    "data fetch": ["--data-dir", "--mirror", "--quiet", "--timeout"],
    "infer": [
        "--batch-size", "--data-dir", "--device", "--eval-samples", "--finetune-lr", "--finetune-steps", "--hidden",
        "--lr", "--no-progress", "--run", "--seed", "--show", "--steps",
    ],
    "semisup": ["--data-dir", "--draws", "--json", "--labels", "--run", "--seed", "--with-encoder"],
}  # fmt: skip

# Options added since the split, each on purpose: the set a command lists is the original one plus these.
ADDED_OPTIONS = {
    "train": ["--eval-every", "--eval-sigma", "--eval-metrics"]  # issue 15: the validation monitor; 17: its metrics
    + ["--checkpoint-minutes"]  # issue 18: a wall-clock checkpoint interval
    + ["--noise-prior"]  # issue 15: the reference code's two noise draws, one measured difference
    + ["--lr-decay"]  # issue 15: the learning rate's schedule, the measured cause of the gap to Table 1
    + ["--branch-from"]  # issue 15: a run continued at another rate in a directory of its own
    + ["--keep-checkpoints"]  # issue 26: a bound on the checkpoints a long run leaves on disk
    + ["--compile"],  # issue 28: the compiled training step
    # issue 17: the metrics table (--out: the same option as --json); issue 15: shipped models
    "evaluate": ["--metrics", "--features", "--no-tensorboard", "--out", "--pretrained", "--data"]
    + ["--no-context"],  # issue 17: the model's row alone
    "sample": ["--pretrained", "--data"],  # issue 15: Figures 2 and 3 of a shipped model
}


def options_in_help(text: str) -> set[str]:
    """The option strings of a --help page: the lines that start an option's entry."""
    found = set()
    for line in text.splitlines():
        if re.match(r"^  -", line):
            invocation = re.split(r"\s{2,}", line.strip())[0]
            found |= {part.split()[0] for part in invocation.split(", ")}
    return found - {"-h", "--help"}


@pytest.mark.parametrize("command", list(ORIGINAL_OPTIONS))
def test_no_command_drops_or_renames_an_option(command):
    """No option dropped or renamed by the split; the only new ones are those in ADDED_OPTIONS."""
    code, out, err = cli_in_process(*command.split(), "--help")
    assert code == 0, err
    assert options_in_help(out) == set(ORIGINAL_OPTIONS[command]) | set(ADDED_OPTIONS.get(command, []))


def test_the_data_commands_summary_names_only_the_actions_it_has():
    """advnets --help once promised to 'list, fetch and locate' datasets; data has no 'locate'."""
    from advnets.cli import build_parser

    def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    commands = subcommands(build_parser())
    actions = set(subcommands(commands.choices["data"]).choices)
    summary = next(c.help for c in commands._choices_actions if c.dest == "data")
    assert actions == {"list", "fetch"} and set(re.findall(r"\w+", summary)) - {"and", "datasets"} == actions
    code, out, err = cli_in_process("--help")
    assert code == 0 and summary in out, err


# ---------------------------------------------------------------------------- the train options table


def field_of(cfg: RunConfig, dotted: str):
    section, name = dotted.split(".")
    return getattr(getattr(cfg, section), name)


def test_every_train_option_row_names_a_real_config_field_once():
    fields = [field for _, field, _ in OPTIONS if field is not None]
    assert len(fields) == len(set(fields))
    flags = [flag for flag, _, _ in OPTIONS]
    assert len(flags) == len(set(flags))
    for dotted in fields:
        section, name = dotted.split(".")
        assert name in {f.name for f in dataclasses.fields(getattr(PRESETS["mnist"], section))}, dotted


SAMPLE_TEXT = {positive_int: "3", nonneg_int: "2", nonneg_float: "0.25", positive_float: "0.5", float: "0.75", int: "5"}
SAMPLE_TEXT[seed_int] = "7"
SAMPLE_TEXT[decay_factor] = "1.00005"

# The options a flag goes with (refused without them): metrics are logged at the validation checks; the
# image size and channels are read from folders only; --valid-size splits IDX and CIFAR-10 files.
NEEDS = {
    "--eval-metrics": {"--eval-every": 1},
    "--image-size": {"--data": "folder:images"},
    "--channels": {"--data": "folder:images"},
    "--valid-size": {"--data": "mnist"},
}


@pytest.mark.parametrize("row", [r for r in OPTIONS if r[1] is not None], ids=lambda r: r[0])
def test_each_train_flag_sets_its_config_field(row):
    """The one row of a flag is all it takes: the parsed value lands in the field it names."""
    flag, dotted, kwargs = row
    if kwargs.get("action") == "store_true":
        argv, expected = [flag], True
    elif "choices" in kwargs:
        choice = [c for c in kwargs["choices"] if c != field_of(PRESETS["mnist"], dotted)][-1]
        argv, expected = [flag, str(choice)], choice
    elif "type" in kwargs:
        text = SAMPLE_TEXT[kwargs["type"]]
        argv, expected = [flag, text], kwargs["type"](text)
    elif flag == "--eval-metrics":  # a list of metric names, logged at --eval-every's checks
        argv, expected = [flag, "fd"], "fd"
    else:
        argv, expected = [flag, "embedded-digits"], "embedded-digits"
    needs = NEEDS.get(flag, {})  # the options a flag goes with, by field and by flag
    cfg = config_from_argv(argv + [a for f, v in needs.items() for a in (f, str(v))])
    assert field_of(cfg, dotted) == expected
    fields = {row[1]: v for f, v in needs.items() for row in OPTIONS if row[0] == f}
    assert cfg == train_config_from_options({dotted: expected, **fields})


def test_options_imply_what_the_cli_always_implied():
    """k > 1 selects the alternating update; adam without --lr takes 2e-4 without decay; an
    explicit --lr wins; --conditional feeds a one-hot label of 10 classes to G and D."""
    base = PRESETS["mnist"]
    cfg = train_config_from_options({"train.k": 3})
    assert cfg.train.k == 3 and cfg.train.update == "alternating"
    with pytest.raises(ConfigError, match="train.k"):
        train_config_from_options({"train.k": 3, "train.update": "simultaneous"})
    cfg = train_config_from_options({"optim.optimizer": "adam"})
    assert (cfg.optim.lr, cfg.optim.lr_decay) == (2e-4, 1.0)
    cfg = train_config_from_options({"optim.optimizer": "adam", "optim.lr": 0.01})
    assert (cfg.optim.lr, cfg.optim.lr_decay) == (0.01, base.optim.lr_decay)
    cfg = train_config_from_options({}, conditional=True)
    assert (cfg.generator.condition, cfg.generator.cond_dim, cfg.discriminator.cond_dim) == ("class", 10, 10)
    assert train_config_from_options({"train.epochs": None}) == base  # None keeps the base's value
    assert config_from_argv(["--k", "2", "--optimizer", "adam", "--conditional"]) == train_config_from_options(
        {"train.k": 2, "optim.optimizer": "adam"}, conditional=True
    )


def test_unknown_or_impossible_options_name_the_field():
    with pytest.raises(ConfigError, match="train.nope|nope"):
        train_config_from_options({"train.nope": 1})
    with pytest.raises(ConfigError, match="'epochs'"):
        train_config_from_options({"epochs": 1})
    with pytest.raises(ConfigError, match=r"train.real_label must be in \(0.5, 1\]"):
        train_config_from_options({"train.real_label": 0.2})


# ---------------------------------------------------------------------------- the public face


def readme_api_imports() -> dict[str, set[str]]:
    """Names the README's "Python API" section imports, by module (from its python code blocks)."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^### Python API\n(.*?)(?=^#{1,3} )", text, re.S | re.M)
    assert section, "README.md has no '### Python API' section"
    names: dict[str, set[str]] = {}
    for block in re.findall(r"```python\n(.*?)```", section.group(1), re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom):
                names.setdefault(node.module, set()).update(a.name for a in node.names)
    return names


def test_nothing_shipped_cites_paper_md_or_design_md():
    """PAPER.md and DESIGN.md live outside the repository: a clone cannot follow a reference to them (cite the
    paper's own sections or its reference code, github.com/goodfeli/adversarial)."""
    root = README.parent
    files = [root / "Makefile", root / "pyproject.toml", *root.glob("*.md")]
    files += [
        f for d in ("src", "docs", "benchmarks", "scripts") for f in (root / d).rglob("*") if f.suffix in (".py", ".md")
    ]
    for name in ("PAPER.md", "DESIGN.md"):
        assert [str(f.relative_to(root)) for f in files if name in f.read_text(encoding="utf-8")] == [], name


def test_every_public_name_imports():
    for module in (advnets, advnets.evaluate):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
    from advnets.evaluate import parzen_log_likelihood  # the example

    assert callable(parzen_log_likelihood)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = advnets.nope


def test_all_is_what_the_readme_api_section_imports():
    names = readme_api_imports()
    assert names.get("advnets") == set(advnets.__all__)
    assert names.get("advnets.evaluate", set()) <= set(advnets.evaluate.__all__)
    assert set(names) <= {"advnets", "advnets.evaluate"}, "the README imports from module paths"


def test_import_advnets_loads_no_torch():
    """The public names are resolved on first use, so `import advnets` stays instant."""
    code = "import sys, advnets; print('torch' in sys.modules, 'advnets.train' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------- run directories


def test_run_dir_of_a_run_or_a_checkpoint_file(tmp_path):
    from advnets.runs import run_dir_of

    ckpt = tmp_path / "run" / "checkpoints" / "step-00000010.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert run_dir_of(tmp_path / "run") == tmp_path / "run"
    assert run_dir_of(ckpt) == tmp_path / "run"


def test_a_run_made_with_the_python_api_works_with_every_command(tmp_path, digits):
    """create_run + Trainer.fit: the run directory `advnets train` would make, so sample,
    evaluate, report and train --resume take it (and resume on the run's own dataset)."""
    from advnets import Trainer, create_run

    cfg = tiny_config(epochs=1, sample_every=1000)
    cfg = override(cfg, data=override(cfg.data, source="embedded-digits"))
    run_dir = create_run(cfg, digits, tmp_path / "api-run")
    doc = json.loads((run_dir / "config.json").read_text())
    assert doc["dataset"] == digits.name and doc["image_shape"] == [1, 8, 8] and doc["splits"]["train"] == 1439
    Trainer(cfg, digits).fit(run_dir=run_dir, progress=False, tensorboard=False)
    with pytest.raises(AdvnetsError, match="already holds a run"):
        create_run(cfg, digits, run_dir)

    code, out, err = cli_in_process("sample", "--run", run_dir, "-n", "4")
    assert code == 0, err
    assert (run_dir / "samples" / "sample-seed0.png").is_file()
    code, out, err = cli_in_process("evaluate", "--run", run_dir, "--num-samples", "50", "--no-progress")
    assert code == 0, err
    assert json.loads((run_dir / "parzen.json").read_text())["dataset"] == digits.name
    code, out, err = cli_in_process("train", "--out", run_dir, "--resume", "--epochs", "2", "--no-progress")
    assert code == 0, err
    assert "with changes: train.epochs 1 -> 2" in err
    resumed = json.loads((run_dir / "config.json").read_text())
    assert resumed["data"]["source"] == "embedded-digits"
    assert resumed["resumes"][-1]["changes"] == {"train.epochs": [1, 2]}
