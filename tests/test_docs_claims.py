"""The counts, ratios and times the docs quote, read against their source (issue 30, "claims that have gone
stale"): benchmarks/RESULTS.md's tables, the scripts' own defaults and the code. A benchmark re-run that changes
a number makes the page that quotes it fail here until the page says the new number."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def read(relative: str) -> str:
    return (ROOT / relative).read_text(encoding="utf-8")


def flat(text: str) -> str:
    """Prose with its line breaks and runs of spaces made single spaces, for matching sentences."""
    return " ".join(text.split())


def between(text: str, start: str, end: str) -> str:
    """The text from the first ``start`` to the first ``end`` after it (both must be there)."""
    i = text.index(start)
    return text[i : text.index(end, i + len(start))]


def table(text: str, header_start: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first Markdown table whose header line starts with ``header_start``."""
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def number(cell: str) -> float:
    """The first number of a cell: '2,421 (2,584)' -> 2421, '326.10×' -> 326.1, '-256.8 ± 191.0' -> -256.8."""
    return float(re.search(r"-?[0-9][0-9,]*\.?[0-9]*(?:e[-+][0-9]+)?", cell).group(0).replace(",", ""))


def shown_as(value: float, quoted: str) -> bool:
    """Whether ``quoted`` (e.g. '326×', '0.59×', '60%') is ``value`` rounded to the digits it shows."""
    digits = re.search(r"[0-9][0-9,]*(?:\.([0-9]+))?", quoted)
    decimals = len(digits.group(1) or "")
    return round(value, decimals) == number(quoted)


# --------------------------------------------------------------------------- docs/evaluation.md


def test_evaluation_page_quotes_the_parzen_speed_table_of_results():
    results = table(between(read("benchmarks/RESULTS.md"), "run_all:begin parzen", "run_all:end parzen"), "| method")
    docs = table(read("docs/evaluation.md"), "| method | ratio to advnets")
    assert len(docs) == len(results) == 5
    for (method, ratio, error), row in zip(docs, results, strict=True):
        assert method.split()[:2] == row[0].split()[:2], (method, row[0])  # the same method, in the same order
        assert shown_as(number(row[2]), ratio), (method, ratio, row[2])
        assert error == row[3], (method, error, row[3])


# --------------------------------------------------------------------------- docs/performance.md


def _results_row(section: str, update: str, variant: str) -> list[str]:
    return next(r for r in table(section, "| update | variant") if r[0] == update and r[1].startswith(variant))


def test_performance_page_quotes_the_cpu_training_and_sampling_tables():
    results = read("benchmarks/RESULTS.md")
    training = between(results, "run_all:begin training", "run_all:end training")
    sampling = between(results, "run_all:begin sampling", "run_all:end sampling")
    page = read("docs/performance.md")
    rows = {r[0]: r for r in table(page, "| | advnets vs the plain loop")}
    alternating, simultaneous = (_results_row(training, u, "advnets") for u in ("alternating", "simultaneous"))
    quoted = rows["alternating (Algorithm 1)"]
    assert shown_as(number(alternating[5]), quoted[1]) and shown_as(number(alternating[4]), quoted[2]), quoted
    quoted = rows["simultaneous (reference code)"]
    vs_alternating, vs_simultaneous = re.findall(r"[0-9.]+×", quoted[1])
    assert shown_as(number(simultaneous[5]), vs_alternating) and shown_as(number(simultaneous[6]), vs_simultaneous)
    assert shown_as(number(simultaneous[4]), quoted[2]), quoted
    share = next(r for r in table(sampling, "| what") if r[0].startswith("advnets"))[3]
    assert f"Sampling runs at {share} of its floor" in flat(page)


def test_performance_page_quotes_the_gpu_timing_that_results_records():
    gpu = between(read("benchmarks/RESULTS.md"), "## Training and sampling throughput on a GPU", "## Stability")
    page = flat(read("docs/performance.md"))
    assert "no GPU timing has been taken" not in page  # RESULTS.md has GPU tables
    machine = re.search(r"otherwise idle (NVIDIA \w+)", gpu).group(1)
    step = _results_row(gpu, "alternating", "advnets")
    floor = _results_row(gpu, "alternating", "floor")
    sampling = next(r for r in table(gpu, "| what") if r[0].startswith("advnets"))
    said = (
        f'timed on one {machine} (`benchmarks/RESULTS.md`, "Training and sampling throughput on a GPU"): '
        f"{step[2].split()[0]} samples/s for the alternating step, {step[4].split()[0]} of its floor (launch-bound: "
        f"{step[3].split()[0]} ms per iteration against {floor[3].split()[0]} ms of matrix products), and sampling at "
        f"{sampling[3]} of its floor"
    )
    assert said in page, said


# --------------------------------------------------------------------------- docs/stability.md


def _stability_tables(text: str) -> dict[str, dict[str, list[str]]]:
    """{'cpu' | 'gpu': {configuration: row}} of docs/stability.md's two tables (the GPU one after "On a GPU")."""
    cpu = table(text, "| configuration")
    gpu = table(text[text.index("On a GPU") :], "| configuration")
    return {"cpu": {r[0]: r for r in cpu}, "gpu": {r[0]: r for r in gpu}}


def test_stability_page_tables_are_results_tables():
    results = read("benchmarks/RESULTS.md")
    results = results[results.index("## Stability over seeds") :]
    cpu_results = {r[0]: r for r in table(results, "| configuration")}
    gpu_results = {r[0]: r for r in table(results[results.index("### The same on a GPU") :], "| configuration")}
    page = _stability_tables(read("docs/stability.md"))
    assert page["cpu"] == cpu_results  # the CPU table is copied whole
    assert page["gpu"].keys() == gpu_results.keys()
    for name, row in page["gpu"].items():  # the GPU table keeps the counts, the classes and the Parzen column
        full = gpu_results[name]
        assert row[:6] == full[:6] and row[6] == full[-2], (name, row, full)


def test_stability_page_sentences_count_what_its_tables_show():
    tables = _stability_tables(read("docs/stability.md"))
    page = flat(read("docs/stability.md"))

    def collapsed(device: str, name: str) -> tuple[int, int]:
        row = tables[device][name]
        return int(row[2]), int(row[1])

    sim_noise, alt_noise = collapsed("gpu", "simultaneous-sgd-noise"), collapsed("gpu", "alternating-sgd-noise")
    assert (
        f"instance noise alone (std 0.1) in {sim_noise[0]} of {sim_noise[1]} (simultaneous) and {alt_noise[0]} of "
        f"{alt_noise[1]} (alternating)" in page
    )
    sim_fast, alt_fast = collapsed("gpu", "simultaneous-sgd-fast-d"), collapsed("gpu", "alternating-sgd-fast-d")
    assert f"collapsed in {sim_fast[0]} of {sim_fast[1]} (simultaneous) and {alt_fast[0]} of {alt_fast[1]}" in page
    demo_gpu, demo_cpu = (collapsed(d, "simultaneous-sgd-fast-d-noise") for d in ("gpu", "cpu"))
    assert demo_gpu[0] == demo_cpu[0] == 0
    total = demo_gpu[1] + demo_cpu[1]
    assert f"collapsed in none of {total} runs** ({demo_gpu[1]} on the GPU, {demo_cpu[1]} on the CPU)" in page
    spreads = [
        float(row[-2 if device == "cpu" else -1].split("±")[1])
        for device in ("cpu", "gpu")
        for row in tables[device].values()
    ]
    assert f"configuration is up to ±{max(spreads):.0f} nats" in page


# --------------------------------------------------------------------------- docs/runs.md and the breaks


def _assigned(path: Path, name: str) -> ast.expr:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)
    )


def test_runs_page_counts_the_breaks_that_break_promises_lists():
    breaks = len(_assigned(ROOT / "scripts" / "break_promises.py", "MUTATIONS").elts)
    quoted = re.search(r"`scripts/break_promises.py` lists every break, (\d+) now", flat(read("docs/runs.md")))
    assert quoted is not None and int(quoted.group(1)) == breaks


def test_runs_page_calls_default_only_the_tests_that_are_not_marked_slow():
    """The resume row's "in the default run" tests carry no slow mark (the default run skips those)."""
    row = next(line for line in read("docs/runs.md").splitlines() if "in-process twins" in line)
    default = row[row.index("in-process twins") :]
    names = re.findall(r"`(?:tests/[\w/]+\.py::)?(test_\w+)`", default)
    assert len(names) >= 2
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    for name in names:
        before = sources[: sources.index(f"def {name}(")].rsplit("\n\n", 1)[-1]
        assert "pytest.mark.slow" not in before, f"{name} is marked slow but docs/runs.md says it runs by default"


# --------------------------------------------------------------------------- benchmarks


def test_stability_benchmark_docstring_counts_the_runs_of_its_defaults():
    path = ROOT / "benchmarks" / "stability.py"
    configs = len(_assigned(path, "CONFIGS").keys)
    seeds = len(_assigned(path, "SEEDS").elts)
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert f"every configuration x seeds 0..{seeds - 1} ({configs * seeds} runs)" in doc


def test_results_hours_for_1151_epochs_follow_from_the_rate_it_recorded():
    from advnets.presets import PRESETS

    text = flat(read("benchmarks/RESULTS.md"))
    run = re.search(r"\(one run each, 200 epochs, two side by side, ~(\d+) steps/s each, (\d+) min\)", text)
    steps_per_epoch = 50_000 // PRESETS["mnist"].train.batch_size  # MNIST's 60,000 less the 10,000 validation
    rate = 200 * steps_per_epoch / (int(run.group(2)) * 60)
    assert round(rate) == int(run.group(1))
    claim = re.search(
        r"~1,151 epochs of one run \(([0-9,]+) steps of (\d+)\), about (\d+) hours of one CPU thread at the "
        r"~(\d+) steps/s of the retrained seeds 1 and 2 above \(200 epochs in (\d+) min each\)",
        text,
    )
    assert claim is not None, "the 1,151-epoch sentence of RESULTS.md changed: update this test with it"
    steps, batch, hours, quoted_rate, minutes = (int(g.replace(",", "")) for g in claim.groups())
    assert batch == PRESETS["mnist"].train.batch_size and steps == 1151 * steps_per_epoch
    assert quoted_rate == round(rate) and minutes == int(run.group(2))
    assert hours == round(steps / rate / 3600)


def test_notes_no_longer_propose_what_the_training_step_does(digits):
    """benchmarks/NOTES.md says fused SGD and D(x, fake) were applied; the step does both."""
    from advnets.train import Trainer
    from conftest import tiny_config

    notes = read("benchmarks/NOTES.md")
    assert "change proposed" not in notes and "| proposed |" not in notes
    assert "proposed for `train.py`" not in notes
    cfg = tiny_config()
    trainer = Trainer(cfg, digits)
    assert trainer.opt_g.defaults.get("fused") and trainer.opt_d.defaults.get("fused")
    algorithm = read("src/advnets/train/algorithm.py")
    assert "p.d_train(p.seen_by_d(x), p.seen_by_d(fake))" in algorithm  # D(x, fake): two blocks, one call


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_docs_pages_cite_no_module_that_no_longer_exists(page):
    """`train.py` became the train/ package (issue 16); a page naming src/advnets/NAME.py names a real file."""
    text = read(f"docs/{page}")
    for name in re.findall(r"src/advnets/([\w/]+\.py)", text):
        assert (ROOT / "src" / "advnets" / name).is_file(), f"docs/{page}: src/advnets/{name} does not exist"
