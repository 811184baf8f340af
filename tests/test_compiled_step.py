"""The compiled training step (advnets.train.compiled, issue 28): when it is used, resume and checkpoints.

Its numbers (losses, gradients, updates against the plain and the eager step) are tests/test_step_equivalence.py's.
Here: ``train.compile`` chooses as documented, a compiled run resumes bit for bit, a checkpoint moves between the
eager and the compiled step and between fp32 and bf16, and a compiled run never recompiles between steps.
"""

from __future__ import annotations

import copy

import pytest
import torch

from advnets.config import override
from advnets.data import Dataset
from advnets.presets import PRESETS
from advnets.train import Trainer, algorithm
from advnets.train.compiled import AUTO_MIN_STEPS, CompiledSteps, CompileError
from conftest import cli_in_process, load_benchmark, tiny_config


def small_data(n: int = 60) -> Dataset:
    """60 random 28x28 images: with m = 20, three steps per epoch (epoch ends are where the schedules move)."""
    images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.full((n,), -1)
    return Dataset("random-28x28", images, images[:20], images[:20], labels, labels[:20], labels[:20])


def config(**train):
    return tiny_config(**{"epochs": 4, **train})


# ----- which step a run gets


def test_off_and_short_runs_train_eagerly():
    data = small_data()
    assert Trainer(config(compile="off"), data, device="cpu").updates is algorithm
    assert Trainer(config(compile="auto"), data, device="cpu").updates is algorithm  # 12 steps: not worth compiling


def test_auto_compiles_a_long_run_it_supports_and_not_one_it_does_not():
    data = small_data()
    epochs = AUTO_MIN_STEPS // 3 + 1
    assert isinstance(Trainer(config(compile="auto", epochs=epochs), data, device="cpu").updates, CompiledSteps)
    adam = override(config(compile="auto", epochs=epochs), optim=override(PRESETS["mnist"].optim, optimizer="adam"))
    assert Trainer(adam, data, device="cpu").updates is algorithm


def test_on_compiles_even_a_short_run():
    assert isinstance(Trainer(config(compile="on"), small_data(), device="cpu").updates, CompiledSteps)


@pytest.mark.parametrize(
    "option, reason",
    [
        (("--optimizer", "adam"), "optimizer adam"),
        (("--instance-noise", "0.1"), "instance noise"),
        (("--skip-nonfinite", "3"), "--skip-nonfinite"),
        (("--conditional",), "conditioning"),
    ],
)
def test_compile_on_for_an_unsupported_run_is_one_clear_line_and_exit_2(tmp_path, option, reason):
    code, _, err = cli_in_process(
        "train", "--preset", "mnist", "--data", "embedded-digits", "--epochs", "1", "--compile", "on",
        "--out", tmp_path / "run", *option,
    )  # fmt: skip
    assert code == 2
    assert "--compile on" in err and reason in err and "--compile off" in err
    assert "Traceback" not in err


def test_compile_on_for_an_unsupported_run_raises_compile_error_from_the_trainer():
    with pytest.raises(CompileError, match="instance noise"):
        Trainer(config(compile="on", instance_noise=0.1), small_data(), device="cpu")


def test_an_unknown_compile_setting_is_refused_naming_the_option(tmp_path):
    code, _, err = cli_in_process("train", "--compile", "sometimes", "--out", tmp_path / "run")
    assert code == 2 and "--compile" in err


# ----- checkpoints and resume


def _state(trainer: Trainer) -> dict:
    return copy.deepcopy(trainer.state_dict())


def _weights(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (*trainer.g.parameters(), *trainer.d.parameters())]


def _trainer(cfg, data, mode: str, state: dict | None = None) -> Trainer:
    """A Trainer with the eager step ("eager"), the compiled one ("compiled") or its functions uncompiled
    ("hand"), optionally continued from ``state``."""
    trainer = Trainer(cfg, data, device="cpu")
    if mode != "eager":
        trainer.updates = CompiledSteps(trainer, compiled=mode == "compiled")
    if state is not None:
        trainer.load_state_dict(copy.deepcopy(state))
    return trainer


@pytest.mark.parametrize("mode", ["hand", pytest.param("compiled", marks=pytest.mark.slow)])
@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_a_resumed_run_repeats_the_uninterrupted_run_bit_for_bit(mode, update):
    """Stopped at step 4 (mid-epoch), resumed in a new Trainer: steps 5..8 are the uninterrupted run's."""
    data, cfg = small_data(), config(update=update, k=2 if update == "alternating" else 1)
    whole = _trainer(cfg, data, mode)
    for _ in range(4):
        whole.train_step()
    saved = _state(whole)
    for _ in range(4):
        whole.train_step()
    resumed = _trainer(cfg, data, mode, saved)
    for _ in range(4):
        resumed.train_step()
    for a, b in zip(_weights(whole), _weights(resumed), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(whole.streams.dropout.get_state(), resumed.streams.dropout.get_state())


@pytest.mark.parametrize("mode", ["hand", pytest.param("compiled", marks=pytest.mark.slow)])
def test_a_checkpoint_moves_between_eager_and_compiled_and_fp32_and_bf16(mode):
    """A run hops eager fp32 -> compiled fp32 -> eager bf16 -> compiled bf16 -> eager fp32, three steps each
    (an epoch boundary falls inside): every checkpoint loads in the next setting, its keys and optimiser state
    are the eager step's, and each leg continues the random streams as the eager step would."""
    data = small_data()
    legs = [("eager", "fp32"), (mode, "fp32"), ("eager", "bf16"), (mode, "bf16"), ("eager", "fp32")]
    state = None
    for kind, precision in legs:
        cfg = config(precision=precision)
        trainer = _trainer(cfg, data, kind, state)
        twin = _trainer(cfg, data, "eager", state)  # the same leg, eagerly
        for _ in range(3):
            out, want = trainer.train_step(), twin.train_step()
            tol = dict(rtol=2e-2, atol=1e-3) if precision == "bf16" else dict(rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(out["d_loss"], want["d_loss"], **tol)
            torch.testing.assert_close(out["g_loss"], want["g_loss"], **tol)
        state = _state(trainer)
        reference = twin.state_dict()
        assert state.keys() == reference.keys()
        assert state["opt_g"]["state"].keys() == reference["opt_g"]["state"].keys()
        assert all(set(s) == {"momentum_buffer"} for s in state["opt_d"]["state"].values())
        for name in ("data", "noise", "dropout"):
            assert torch.equal(state["rng"][name], reference["rng"][name]), name
    assert state["step"] == 15 and state["epoch"] == 5


@pytest.mark.slow
def test_a_compiled_run_never_recompiles_between_steps():
    """Across epoch ends (the momentum changes), every step of the learning-rate decay, both updates, and a
    save and load: the graphs compiled at the first step serve every later one."""
    data = small_data()
    for update in ("simultaneous", "alternating"):
        trainer = _trainer(config(update=update), data, "compiled")
        trainer.train_step()
        with torch._dynamo.config.patch(error_on_recompile=True):
            for _ in range(4):
                trainer.train_step()
            trainer.load_state_dict(_state(trainer))
            for _ in range(4):
                trainer.train_step()
        assert trainer.epoch >= 2
        assert set(trainer.updates.compile_seconds) == ({"simultaneous"} if update == "simultaneous" else {"d", "g"})


# ----- the benchmark's table (its numbers are the lead's, on a quiet machine)


@pytest.mark.slow
def test_train_throughput_modes_table_has_every_mode_floor_and_the_paper_hours(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "train_throughput.py"
    args = ["--modes-only", "--quick", "--update", "simultaneous", "--threads-list", "1", "--rounds", "1"]
    out = subprocess.run(
        [sys.executable, str(script), *args, "--steps", "1", "--floor-calls", "1"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in out.stdout.splitlines() if line.startswith("| simultaneous")]
    names = [r[1].strip() for r in rows]
    assert names[:6] == [
        "eager fp32", "compiled fp32", "eager bf16", "compiled bf16",
        "floor fp32 (matrix products only)", "floor bf16 (matrix products only)",
    ]  # fmt: skip
    assert [n.split(":")[0] for n in names[6:]] == ["bound fp32", "bound bf16"]
    for r in rows[6:]:  # floor + optimiser pass + draws: slower than the floor, and the share follows from the ms
        parts = [float(x.split()[0]) for x in r[1].split("optimiser pass ")[1].split(" + draws ")]
        floor_ms, ms = float(r[5]), float(r[4])
        assert all(x >= 0 for x in parts) and abs(ms - (floor_ms + sum(parts))) <= 0.25
        assert abs(float(r[6].strip().rstrip("%")) - 100 * floor_ms / ms) <= 2.5
    for r in rows:
        steps_per_s, ms, floor_ms, share, hours = (r[i].strip() for i in (3, 4, 5, 6, 7))
        assert float(steps_per_s.split()[0]) > 0 and float(ms) > 0 and float(floor_ms) > 0
        assert share.endswith("%") and float(hours) > 0
        # hours for the paper's 575,000 steps follow from the time per step
        assert abs(float(hours) - 575_000 * float(ms) / 1e3 / 3600) <= 0.01 * float(hours) + 0.01
    compiled = [r for r in rows if r[1].strip().startswith("compiled")]
    assert all(r[8].strip().endswith(" s") and "; " in r[8] for r in compiled)  # compile; cached first step


@pytest.mark.slow
@pytest.mark.parametrize("fallback", [True, False], ids=["auto", "on"])
def test_a_failed_compile_trains_eagerly_under_auto_and_is_one_line_under_on(capfd, fallback):
    """No usable C++ compiler (a real inductor failure, not a stand-in): ``auto`` says so on stderr and the run
    goes on eagerly with the inputs already drawn, as the eager run would; ``on`` raises CompileError."""
    data = small_data()
    eager = _trainer(config(), data, "eager")
    trainer = Trainer(config(), data, device="cpu")
    trainer.updates = CompiledSteps(trainer, fallback=fallback)
    broken = torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False})
    if not fallback:
        with broken, pytest.raises(CompileError, match="compiling the training step failed"):
            trainer.train_step()
        return
    with broken:
        outs = [(trainer.train_step(), eager.train_step())]
    assert trainer.updates is algorithm
    assert "compiling the training step failed" in capfd.readouterr().err
    outs.append((trainer.train_step(), eager.train_step()))
    for out, want in outs:
        torch.testing.assert_close(out["d_loss"], want["d_loss"], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(out["g_loss"], want["g_loss"], rtol=1e-4, atol=1e-6)


def test_step_profile_splits_a_step_into_products_draws_and_the_rest():
    """benchmarks/step_profile.py on the eager step (no compile): its categories add up to the profiled step, the
    matrix products and the random draws are found, and each listed operation's calls per step are whole."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "step_profile.py"
    out = subprocess.run(
        [sys.executable, str(script), "--step", "eager", "--threads", "1", "--steps", "3", "--top", "5"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    profiled = float(re.search(r"profiled: ([0-9.]+) ms per step", out.stdout).group(1))
    shares = re.findall(r"^\| ([^|]+) \| ([0-9.]+) \| (\d+)% \|$", out.stdout, re.M)
    rows = {what: (float(ms), int(share)) for what, ms, share in shares}
    assert {"matrix products", "random draws (batch order, noise, masks)"} <= set(rows)
    assert abs(sum(ms for ms, _ in rows.values()) - profiled) <= 0.02 + 0.005 * profiled
    assert abs(sum(share for _, share in rows.values()) - 100) <= len(rows)  # rounded shares
    ops = re.findall(r"^\| (aten::\S+|[^|]+) \| ([0-9.]+) \| ([0-9.]+) \|$", out.stdout, re.M)
    assert len(ops) == 5 and all(float(calls).is_integer() for _, _, calls in ops)
    assert {"aten::mm", "aten::addmm"} & {name.strip() for name, _, _ in ops}


@pytest.mark.slow
def test_step_profile_ablate_times_the_step_without_each_part():
    """benchmarks/step_profile.py --ablate: one row per variant, each process's compiled step timed, and what a
    variant saves is the whole step's median less its own."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "step_profile.py"
    out = subprocess.run(
        [sys.executable, str(script), "--ablate", "1", "--threads", "1", "--steps", "2"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = re.findall(r"^\| ([^|]+) \| ([0-9.]+) \| ([-+][0-9.]+) \|$", out.stdout, re.M)
    assert [r[0] for r in rows] == [
        "the step as it is", "without the optimiser's update", "without the gradient norms",
    ]  # fmt: skip
    base = float(rows[0][1])
    assert base > 0 and float(rows[0][2]) == 0
    for _, ms, saves in rows[1:]:
        assert float(ms) > 0 and abs(float(saves) - (base - float(ms))) <= 0.011


@pytest.mark.parametrize("variant", ["without the optimiser's update", "without the gradient norms"])
def test_step_profile_ablation_variants_remove_what_they_name(monkeypatch, variant):
    """--ablate's variants (benchmarks/step_profile.VARIANTS), applied as its processes apply them: without the
    update the weights stay as they were and the norms are still computed; without the norms they read 0 and the
    weights move."""
    from advnets.train import compiled

    monkeypatch.setattr(compiled, *load_benchmark("step_profile").VARIANTS[variant])
    trainer = _trainer(config(), small_data(), "hand")
    before = [w.detach().clone() for w in [*trainer.g.parameters(), *trainer.d.parameters()]]
    out = trainer.train_step()
    after = [*trainer.g.parameters(), *trainer.d.parameters()]
    unchanged = all(torch.equal(a, b) for a, b in zip(after, before, strict=True))
    norms = [out["d_grad_norm"].item(), out["g_grad_norm"].item()]
    if variant == "without the optimiser's update":
        assert unchanged and min(norms) > 0
    else:
        assert not unchanged and norms == [0.0, 0.0]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_bounds_optimiser_pass_updates_both_nets_from_gradients_in_the_products_dtype(precision):
    """step_modes.Bound times one SGD pass over G's and D's weights per iteration, with gradients as the step's
    products leave them (bfloat16 under --precision bf16) and float32 weights and buffers; its draws come from the
    trainer's named generators (they advance)."""
    step_modes, tt = load_benchmark("step_modes"), load_benchmark("train_throughput")
    bound = step_modes.Bound(tt, tt.load_data(), "simultaneous", precision, torch.device("cpu"), calls=1)
    want = torch.bfloat16 if precision == "bf16" else torch.float32
    assert all(g.dtype == want for grads in bound.grads for g in grads)
    assert all(w.dtype == torch.float32 for ws in (*bound.weights, *bound.bufs) for w in ws)
    before = [[w.clone() for w in ws] for ws in bound.weights]
    bound._optimiser()
    for net, old in zip(bound.weights, before, strict=True):  # G's, then D's
        assert all(not torch.equal(w, o) for w, o in zip(net, old, strict=True))
    state = bound.trainer.streams.dropout.get_state()
    parts = bound.measure()
    assert set(parts) == {"optimiser", "draws"} and min(parts.values()) > 0
    assert not torch.equal(state, bound.trainer.streams.dropout.get_state())


def test_outputs_read_after_a_cuda_graph_replay_are_copies_also_inside_nested_tuples():
    """Under CUDA graphs the step's output memory is reused at the next replay: every tensor read later, also the
    logged values in their nested tuple, must be a copy; the gradient lists are not read then and stay uncopied."""
    from advnets.train.compiled import replay_safe

    loss, logged, grads = torch.tensor(1.0), (torch.tensor(0.5), torch.tensor(-1.4)), [torch.ones(3)]
    out = replay_safe((loss, logged, grads, 7))
    assert out[0] is not loss and torch.equal(out[0], loss)
    assert all(c is not o and torch.equal(c, o) for c, o in zip(out[1], logged, strict=True))
    assert out[2] is grads and out[3] == 7
    logged[0].fill_(9.0)  # the graph's memory overwritten by a replay: the copy keeps the value it had
    assert out[1][0].item() == 0.5
