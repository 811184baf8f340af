"""Checkpoints written before the training redesign (issue 16) still resume to the state the old code reached.

tests/fixtures/compat/ holds run directories made by tests/fixtures/make_compat_checkpoints.py on commit 4f379c8:
config.json and one checkpoint at step S of four tiny 8x8-digit runs (the simultaneous update, Algorithm 1 with
k = 2, class-conditional nets, an inpainting model), and beside each the state that the uninterrupted run had
after its last step T. Resuming with today's code through `advnets train --resume` must reproduce it: the
counters exactly, the weights and optimiser buffers bit for bit on the CPU that wrote the fixtures and, on
another CPU, to the float32 round-off of its own matrix kernels. Measured on an Intel Xeon against fixtures
written on an AMD EPYC: at most 8.1e-7 of a tensor's largest value (2.3e-10 absolute), while the training
between S and T moves the weights by about 1e-2. A wrong data order, noise or dropout stream, or a lost
momentum buffer changes the result at that scale, so the tolerance below (1e-5 of each tensor's scale) still
catches every format or stream change the test exists for.
"""

import json
import shutil
from pathlib import Path

import pytest
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


ROUND_OFF = 1e-5  # of a tensor's largest absolute value: another CPU's float32 kernels, not another stream


@pytest.mark.parametrize("name", ["simultaneous", "alternating", "conditional", "inpaint"])
def test_a_checkpoint_from_before_the_redesign_resumes_to_the_old_codes_state(tmp_path, name):
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
    got, before = _tensors(final), _tensors(start)
    assert sorted(got) == sorted(expected)
    moved = 0.0
    for key, tensor in expected.items():
        scale = float(tensor.abs().max())
        error = float((got[key] - tensor).abs().max())
        assert error <= ROUND_OFF * scale, f"{name}: {key} differs by {error:.3g} after resuming to {final['step']}"
        if key in before:
            moved = max(moved, float((tensor - before[key]).abs().max()) / max(scale, 1e-30))
    assert moved > 100 * ROUND_OFF  # the tolerance is far below what training from S to T changes
    for key, value in counters.items():
        assert final[key] == int(value), key
    assert final["step"] > start["step"]
    # config.json keeps the stored config and records the resume, as for any run.
    doc = json.loads((run / "config.json").read_text())
    assert doc["resumes"] == [{"step": start["step"], "changes": {}}]
    assert doc["dataset"] == "embedded-digits"
