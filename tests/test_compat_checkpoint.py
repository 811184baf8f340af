"""Checkpoints written before the training redesign (issue 16) still resume bit-identically.

tests/fixtures/compat/ holds run directories made by tests/fixtures/make_compat_checkpoints.py on commit 4f379c8:
config.json and one checkpoint at step S of four tiny 8x8-digit runs (the simultaneous update, Algorithm 1 with
k = 2, class-conditional nets, an inpainting model), and beside each the state that the uninterrupted run had
after its last step T. Resuming with today's code through `advnets train --resume` must reproduce it exactly.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from advnets.checkpoint import latest_checkpoint, load_checkpoint
from conftest import cli_in_process

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "compat"


def _tensors(state):
    """The same flat names as make_compat_checkpoints.expected_tensors."""
    out = {f"generator.{k}": v for k, v in state["generator"].items()}
    out.update({f"discriminator.{k}": v for k, v in state["discriminator"].items()})
    for opt in ("opt_g", "opt_d"):
        for i, s in state[opt]["state"].items():
            out[f"{opt}.{i}.momentum_buffer"] = s["momentum_buffer"]
    return out


@pytest.mark.parametrize("name", ["simultaneous", "alternating", "conditional", "inpaint"])
def test_a_checkpoint_from_before_the_redesign_resumes_bit_identically(tmp_path, name):
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    start = load_checkpoint(latest_checkpoint(run))
    code, out, err = cli_in_process("train", "--out", run, "--resume", "--no-progress")
    assert code == 0, err
    assert f"resuming {run} at step {start['step']}" in err
    final = load_checkpoint(latest_checkpoint(run))
    with safe_open(FIXTURES / f"{name}.expected.safetensors", framework="pt") as f:
        expected = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        counters = f.metadata()
    got = _tensors(final)
    assert sorted(got) == sorted(expected)
    for key, tensor in expected.items():
        assert torch.equal(got[key], tensor), f"{name}: {key} differs after resuming to step {final['step']}"
    for key, value in counters.items():
        assert final[key] == int(value), key
    assert final["step"] > start["step"]
    # config.json keeps the stored config and records the resume, as for any run.
    doc = json.loads((run / "config.json").read_text())
    assert doc["resumes"] == [{"step": start["step"], "changes": {}}]
    assert doc["dataset"] == "embedded-digits"
