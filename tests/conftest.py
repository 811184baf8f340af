"""Shared fixtures: tiny configurations that train in seconds on 2 CPU cores."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

from advnets.config import override
from advnets.presets import PRESETS


@pytest.fixture(autouse=True, scope="session")
def _data_root_in_tmp(tmp_path_factory):
    """Caches the library keeps under the data root (features, baselines) go to a temporary directory, never
    the user's ~/.cache/advnets; the CLI subprocesses inherit it. Tests of data_root itself set their own."""
    before = os.environ.get("ADVNETS_DATA")
    os.environ["ADVNETS_DATA"] = str(tmp_path_factory.mktemp("advnets-data-root"))
    yield
    if before is None:
        os.environ.pop("ADVNETS_DATA", None)
    else:
        os.environ["ADVNETS_DATA"] = before


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def tiny_config(**train):
    """The mnist preset shrunk: G 16 -> 32 -> 32 -> d, D maxout 16x3 -> 16x3."""
    base = PRESETS["mnist"]
    return override(
        base,
        generator=override(base.generator, noise_dim=16, hidden_sizes=(32, 32)),
        discriminator=override(base.discriminator, hidden_units=(16, 16), pieces=(3, 3)),
        train=override(base.train, **{"epochs": 1, "batch_size": 20, "log_every": 5, **train}),
    )


@pytest.fixture(scope="session")
def digits():
    from advnets.data import load_dataset

    return load_dataset("embedded-digits")


def cli_in_process(*args):
    """Run the advnets command in this process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from advnets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's own errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


def cli_subprocess(*args, timeout=600):
    """Run ``python -m advnets ARGS`` in a fresh process; returns the CompletedProcess."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "advnets", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module (the benchmarks are scripts, not part of the package)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # where dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def one_thread():
    """Train in this process as the subprocess tests do (OMP_NUM_THREADS=1): CPU results are bit-identical only
    for the same number of intra-op threads (seen on an Intel Xeon: 4e-9 apart between 1 and 2 threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class UpdatesThen:
    """A trainer's update functions (``trainer.updates``: advnets.train.algorithm or its compiled twin) calling
    ``after(kind)`` once each update is done, kind "d", "g" or "simultaneous": where tests send signals from inside
    Algorithm 1 (``trainer.updates = UpdatesThen(trainer.updates, after)``)."""

    def __init__(self, updates, after) -> None:
        self.updates, self.after = updates, after

    def _then(self, kind: str, players):
        out = getattr(self.updates, f"{kind}_step")(players)
        self.after(kind)
        return out

    def d_step(self, players):
        return self._then("d", players)

    def g_step(self, players):
        return self._then("g", players)

    def simultaneous_step(self, players):
        return self._then("simultaneous", players)
