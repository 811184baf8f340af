"""One page that says what a run did: ``advnets report``.

:func:`write_report` reads a run directory (config.json, metrics.jsonl, the
sample grids, the latest checkpoint, parzen.json when present) and writes

- ``report.html``: a single self-contained file (images as ``data:`` URIs, an
  inline style sheet, nothing fetched from anywhere), to open or mail as is;
- ``report.md``: the same content in Markdown, its images written as PNG files
  into ``report_files/`` beside it and linked relatively.

Figure 2 (samples beside their nearest training example), Figure 3 (paths in
z space) and the memorisation check are drawn afresh from the checkpoint with
the given seed: the same seed gives the same pictures, the same ones that
``advnets sample --nearest`` / ``--interpolate`` draw with that seed.

Everything is computed in memory first and each file is written atomically,
PNGs before the pages that link them: an error or a kill leaves the previous
report as it was, or the new one whole.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import platform
import re
import shlex
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from advnets import __version__
from advnets.checkpoint import latest_checkpoint, load_models
from advnets.errors import AdvnetsError, DataError
from advnets.figures import figure_png, new_figure
from advnets.io import atomic_write_bytes
from advnets.runs import CONFIG_FILE, open_run, read_metrics

__all__ = ["write_report"]

PARZEN_FILE = "parzen.json"
INTERP_ROWS = 10  # Figure 3: paths in z ...
INTERP_STEPS = 10  # ... and images per path, as `advnets sample --interpolate`
_GRID = re.compile(r"^step-(\d+)\.png$")


@dataclass
class _Figure:
    """One PNG with what a reader needs to know about it."""

    name: str  # file name in report_files/, also the HTML id
    png: bytes
    alt: str
    caption: str
    pixelated: bool = False  # an image grid (scale without smoothing), not a plot


@dataclass
class _Section:
    """A heading and its content: paragraphs, figures, preformatted text and tables, in order."""

    title: str
    anchor: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def text(self, s: str) -> None:
        self.blocks.append(("p", s))

    def figure(self, fig: _Figure) -> None:
        self.blocks.append(("figure", fig))

    def pre(self, s: str) -> None:
        self.blocks.append(("pre", s))

    def table(self, header: list[str], rows: list[list[str]], numbers: bool = False) -> None:
        """``numbers``: right-align the cells that are numbers (a table of measurements)."""
        self.blocks.append(("table", (header, rows, numbers)))


# ---------------------------------------------------------------------------- entry point


def write_report(
    run_dir: Path,
    out: Path | None = None,
    *,
    seed: int = 0,
    nearest_n: int = 100,
    check_size: int = 500,
) -> tuple[Path, Path]:
    """Write an HTML report of a run and its Markdown twin; returns ``(html, md)``.

    Args:
        run_dir: a run directory (config.json and a checkpoint).
        out: the HTML file (default ``run_dir/report.html``); the Markdown twin
            is written next to it with the suffix ``.md``, its images into
            ``<stem>_files/`` (``report_files/`` by default).
        seed: noise seed of Figure 2 and Figure 3 (the memorisation check uses
            ``seed + 1``, as ``advnets sample --nearest`` does).
        nearest_n: samples in Figure 2 (rounded up to whole rows).
        check_size: held-out test images (and as many samples) in the
            memorisation check.

    Raises:
        AdvnetsError: ``run_dir`` is not a run, or ``out`` is not an .html file.
        CheckpointError: the run's checkpoint is missing or cannot be loaded.
    """
    run_dir = Path(run_dir)
    for name, value in (("nearest_n", nearest_n), ("check_size", check_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AdvnetsError(f"{name}: expected a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise AdvnetsError(f"seed: expected an integer, got {seed!r}")
    config_doc = open_run(run_dir, purpose="a report")
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise AdvnetsError(f"report {out}: expected a file name ending in .html")
    if out.is_dir():
        raise AdvnetsError(f"report {out}: is a directory; name the .html file to write")
    md_path = out.with_suffix(".md")
    files_dir = out.parent / f"{out.stem}_files"

    sections, meta = _build(run_dir, config_doc, seed=seed, nearest_n=nearest_n, check_size=check_size)

    markdown = _markdown(sections, meta, files_dir.name).encode("utf-8")
    page = _html(sections, meta).encode("utf-8")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        files_dir.mkdir(exist_ok=True)
        for directory, prefix in ((out.parent, f".{out.name}."), (out.parent, f".{md_path.name}."), (files_dir, ".")):
            for stale in directory.glob(f"{_glob_escape(prefix)}*.tmp"):  # left by a process killed mid-write
                stale.unlink(missing_ok=True)
        for kind, fig in (b for sec in sections for b in sec.blocks):
            if kind == "figure":  # first the images, then the pages that link them
                atomic_write_bytes(files_dir / fig.name, fig.png)
        atomic_write_bytes(md_path, markdown)
        atomic_write_bytes(out, page)
    except OSError as e:
        raise AdvnetsError(f"could not write report {out}: {e.strerror or e}") from e
    return out, md_path


def _glob_escape(text: str) -> str:
    """``text`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


# ---------------------------------------------------------------------------- content


def _build(
    run_dir: Path, config_doc: dict[str, Any], *, seed: int, nearest_n: int, check_size: int
) -> tuple[list[_Section], dict[str, Any]]:
    g, _, cfg, state = load_models(run_dir)
    step = int(state["step"])
    shape = tuple(int(s) for s in state["image_shape"])
    dataset_name = str(config_doc.get("dataset") or state.get("dataset") or cfg.data.source)
    metrics = read_metrics(run_dir)
    rows = _training_rows(metrics)
    scale, padding = _grid_scale(shape), _grid_padding(shape)
    ckpt = latest_checkpoint(run_dir)
    assert ckpt is not None
    now = datetime.now(timezone.utc)

    meta = {
        "title": f"advnets report: {run_dir.resolve().name}",
        "facts": [
            ("run directory", str(run_dir.resolve())),
            ("dataset", dataset_name),
            ("step", _step_text(step, config_doc, cfg)),
            ("checkpoint", f"{ckpt.name}, written {_mtime(ckpt)}"),
            ("report written", now.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("advnets", f"{__version__} (the checkpoint was written by {state.get('version', 'an unknown version')})"),
            ("seed of Figures 2 and 3", str(seed)),
        ],
    }
    sections: list[_Section] = []

    # -- training curves
    sec = _Section("Training curves", "curves")
    if rows:
        last = rows[-1]
        sec.text(
            f"{len(rows)} logged rows (every {cfg.train.log_every} steps; each the mean over the steps since the "
            f"previous row) up to step {last['step']}. Last row: D loss {last['d_loss']:.4f}, "
            f"G loss {last['g_loss']:.4f}, mean D(x) {last['d_real']:.3f}, mean D(G(z)) {last['d_fake']:.3f}."
        )
        for fig in _curve_figures(rows, cfg.train.g_loss):
            sec.figure(fig)
        collapse = _collapse_figure(metrics)
        if collapse is not None:
            sec.figure(collapse)
    else:
        sec.text(f"{run_dir / 'metrics.jsonl'} holds no training rows: nothing to plot.")
    sections.append(sec)

    # -- the fixed-noise grid
    sec = _Section("Samples during training", "samples")
    grid = _latest_grid(run_dir)
    grid_png = _enlarge_png(grid[1].read_bytes(), scale // 2) if grid else None  # training writes at zoom 2
    if grid is None:
        sec.text(f"No sample grid in {run_dir / 'samples'} (samples/step-NNNNNNNN.png).")
    elif grid_png is None:
        sec.text(f"{grid[1]} is not a readable PNG image.")
    else:
        grid_step, grid_path = grid
        sec.figure(
            _Figure(
                "samples-latest.png",
                grid_png,
                alt=f"10 x 10 grid of generated samples at step {grid_step}",
                caption=f"Samples at step {grid_step} ({grid_path.name}): G applied to the run's fixed batch of "
                "100 noise vectors, the same batch at every step, so that grids from different steps compare; "
                "not cherry-picked.",
                pixelated=True,
            )
        )
    sections.append(sec)

    # -- Figure 2 and the memorisation check need the training data
    from advnets.data import load_dataset, to_display
    from advnets.figures import image_grid, png_bytes
    from advnets.sampling import generate, grid_columns, interpolate, nearest_figure

    try:
        data = load_dataset(cfg.data)
    except DataError as e:
        data, data_error = None, str(e)
        warnings.warn(
            f"report: training data unavailable, Figure 2 and the memorisation check skipped: {e}", stacklevel=2
        )
    else:
        data_error = ""
        if tuple(data.image_shape) != shape:
            data, data_error = (
                None,
                f"data source {cfg.data.source!r} now gives {data.image_shape} images, the checkpoint makes {shape}",
            )

    sec = _Section("Figure 2: samples and their nearest training examples", "figure2")
    if data is None:
        sec.text(f"Skipped: {data_error}.")
    else:
        columns = grid_columns(nearest_n) + 1
        n_rows = -(-nearest_n // (columns - 1))
        images, neighbours = nearest_figure(generate(g, n_rows * (columns - 1), seed, shape), data.train, columns)
        dist = neighbours["distance"]
        sec.figure(
            _Figure(
                "figure2-nearest.png",
                png_bytes(
                    image_grid(to_display(images, cfg.data.preprocess), nrow=columns, padding=padding), scale=scale
                ),
                alt=f"{n_rows} rows of {columns - 1} generated samples, each row ending with the training image "
                "nearest to its last sample",
                caption=f"Figure 2: fair random samples (seed {seed}); rightmost column: the "
                f"nearest training example (Euclidean distance in pixel space, exact, over all {len(data.train)} "
                f"training images) of the sample beside it. Not cherry-picked. Distances: median "
                f"{float(np.median(dist)):.3f}, min {min(dist):.3f}. Same samples as "
                f"`advnets sample --run DIR --nearest -n {nearest_n} --seed {seed}`.",
                pixelated=True,
            )
        )
    sections.append(sec)

    sec = _Section("Figure 3: paths in z space", "figure3")
    sec.figure(
        _Figure(
            "figure3-interpolation.png",
            png_bytes(
                image_grid(
                    to_display(interpolate(g, INTERP_ROWS, INTERP_STEPS, seed, shape), cfg.data.preprocess),
                    nrow=INTERP_STEPS,
                    padding=padding,
                ),
                scale=scale,
            ),
            alt=f"{INTERP_ROWS} rows of {INTERP_STEPS} samples, each row a straight path between two noise vectors",
            caption=f"Figure 3: each row is G along a straight line in z space between two random noise vectors "
            f"(seed {seed}), endpoints included, in {INTERP_STEPS} equal steps. Same samples as "
            f"`advnets sample --run DIR --interpolate --seed {seed}`.",
            pixelated=True,
        )
    )
    sections.append(sec)

    sec = _Section("Memorisation check", "memorisation")
    if data is None:
        sec.text(f"Skipped: {data_error}.")
    elif len(data.test) == 0:
        sec.text("Skipped: the dataset has no test split to compare with.")
    else:
        from advnets.evaluate.nearest import memorization_verdict
        from advnets.evaluate.protocol import memorization_check

        check = memorization_check(g, data.train, data.test, seed, shape, check_size)
        s, h = check["samples"], check["heldout"]
        n_held = h["n"]
        sec.text(
            f"Distance from each of {n_held} samples of G (seed {seed + 1}) and of {n_held} held-out "
            f"test images to its nearest of the {len(data.train)} training images (Euclidean, pixel space). "
            "Samples much closer to the training set than unseen real images are would be a sign of memorisation."
        )
        sec.table(
            ["", "n", "median", "p5", "min", "mean"],
            [
                [label, str(x["n"]), f"{x['median']:.3f}", f"{x['p5']:.3f}", f"{x['min']:.3f}", f"{x['mean']:.3f}"]
                for label, x in (("samples of G", s), ("held-out images", h))
            ],
            numbers=True,
        )
        verdict = memorization_verdict(check["ratio"])
        sec.text(
            f"Ratio of medians (samples / held-out): {check['ratio']:.3f}; fraction of samples closer than 95% of "
            f"held-out images: {check['frac_below_heldout_p5']:.3f}. Verdict: {verdict}."
        )
    sections.append(sec)

    sections.append(_parzen_section(run_dir, dataset_name, step))
    sections.append(_config_section(config_doc))
    sections.append(_timing_section(rows, cfg, step, config_doc))
    return sections, meta


def _training_rows(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training rows of metrics.jsonl (not ``advnets evaluate``'s parzen_ll rows), as one
    history: after a resume from an earlier checkpoint the rows of the abandoned stretch
    (steps at or past the resumed ones) are dropped."""
    keys = ("step", "d_loss", "g_loss", "d_real", "d_fake")
    rows: list[dict[str, Any]] = []
    for row in metrics:
        if not isinstance(row, dict) or "parzen_ll" in row:
            continue
        if not all(isinstance(row.get(k), (int, float)) for k in keys):
            continue
        while rows and rows[-1]["step"] >= row["step"]:
            rows.pop()
        rows.append(row)
    return rows


def _grid_scale(shape: tuple[int, ...]) -> int:
    """Integer zoom of the image grids, even so that the training grids (written at zoom 2) can
    be enlarged to match: 2 for 28 x 28 (as `advnets sample`), 8 for 8 x 8."""
    side = max(shape[-2:])
    return 2 * max(1, min(8, round(28 / side)))


def _grid_padding(shape: tuple[int, ...]) -> int:
    """Pixels between the images of a grid: 2 (as `advnets sample`), 1 for small images."""
    return 2 if max(shape[-2:]) >= 16 else 1


def _enlarge_png(data: bytes, factor: int) -> bytes | None:
    """A PNG enlarged by an integer factor, pixels repeated (no smoothing); None if it is not a PNG."""
    from PIL import Image

    from advnets.figures import png_bytes

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                return None
            array = np.asarray(img.convert("L" if img.mode in ("1", "L", "P") else "RGB"))
    except (OSError, ValueError):
        return None
    return data if factor <= 1 else png_bytes(array, scale=factor)


def _latest_grid(run_dir: Path) -> tuple[int, Path] | None:
    found = []
    samples = run_dir / "samples"
    if samples.is_dir():
        for p in samples.iterdir():
            m = _GRID.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
    return max(found) if found else None


def _planned_steps(config_doc: dict[str, Any], cfg: Any) -> int | None:
    train_size = (config_doc.get("splits") or {}).get("train")
    if not isinstance(train_size, int):
        return None
    return cfg.train.epochs * (train_size // cfg.train.batch_size) // cfg.train.k


def _step_text(step: int, config_doc: dict[str, Any], cfg: Any) -> str:
    planned = _planned_steps(config_doc, cfg)
    if planned is None:
        return str(step)
    state = "complete" if step >= planned else "stopped early or still running"
    return f"{step} of {planned} ({cfg.train.epochs} epochs; {state})"


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------------- plots


def _collapse_figure(metrics: list[dict[str, Any]]) -> _Figure | None:
    """The collapse monitor's rows (advnets.monitor) and warnings, if the run logged any."""
    checks = [r for r in metrics if isinstance(r, dict) and isinstance(r.get("collapse/diversity"), (int, float))]
    if not checks:
        return None
    warned = [r["step"] for r in metrics if isinstance(r, dict) and "warning" in r]
    steps = [r["step"] for r in checks]
    style = {"marker": "o", "markersize": 3} if len(checks) <= 20 else {}
    fig = new_figure(6.4, 3.6, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r["collapse/diversity"] for r in checks], color="tab:blue", label="diversity ratio", **style)
    ax.plot(
        steps,
        [r.get("collapse/near_duplicates", float("nan")) for r in checks],
        color="tab:orange",
        label="near-duplicate fraction",
        **style,
    )
    ax.axhline(0.3, color="gray", linestyle=":", linewidth=1, label="warning threshold (0.3)")
    for i, step in enumerate(warned):
        ax.axvline(step, color="tab:red", linewidth=1, label="collapse warning" if i == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylim(-0.02, max(1.05, max(r["collapse/diversity"] for r in checks) + 0.05))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    said = f"The monitor warned at step {', '.join(map(str, warned))}." if warned else "The monitor never warned."
    return _Figure(
        "curves-collapse.png",
        figure_png(fig),
        alt="line plot of the samples' diversity ratio and near-duplicate fraction against the training step",
        caption="Mode-collapse checks on a fixed noise batch: the samples' mean pairwise distance over a real "
        "batch's (1 = as varied as the data, 0 = one image) and the fraction of samples with a near-identical "
        f"neighbour. {said}",
    )


def _curve_figures(rows: list[dict[str, Any]], g_loss: str) -> list[_Figure]:
    steps = [r["step"] for r in rows]
    style = {"marker": "o", "markersize": 3} if len(rows) <= 20 else {}
    ln2 = math.log(2)
    figs = []

    fig = new_figure(6.4, 3.6, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r["d_loss"] for r in rows], color="tab:blue", label="D loss", **style)
    ax.plot(steps, [r["g_loss"] for r in rows], color="tab:green", label=f"G loss ({g_loss})", **style)
    ax.axhline(ln2, color="gray", linestyle=":", linewidth=1, label="D = 1/2 everywhere (ln 2)")
    if g_loss == "minimax":
        ax.axhline(-ln2, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    at_half = "ln 2 and −ln 2" if g_loss == "minimax" else "both ln 2"
    figs.append(
        _Figure(
            "curves-loss.png",
            figure_png(fig),
            alt="line plot of D's and G's loss against the training step",
            caption=f"Losses against the step. D's loss is the mean of its two cross-entropies, G's the {g_loss} "
            f"loss; where D outputs 1/2 everywhere (the optimum of §4) they are {at_half}.",
        )
    )

    fig = new_figure(6.4, 3.6, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r["d_real"] for r in rows], color="tab:blue", label="mean D(x), training images", **style)
    ax.plot(steps, [r["d_fake"] for r in rows], color="tab:red", label="mean D(G(z)), samples", **style)
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1, label="1/2 (optimum, §4)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("D's output")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figs.append(
        _Figure(
            "curves-d-outputs.png",
            figure_png(fig),
            alt="line plot of mean D(x) and mean D(G(z)) against the training step",
            caption="D's mean output on training images, D(x), and on G's samples, D(G(z)) (with D's dropout "
            "active, as in training). At the game's optimum both are 1/2.",
        )
    )

    fig = new_figure(6.4, 3.6, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, [r.get("lr", float("nan")) for r in rows], color="tab:purple", label="learning rate", **style)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate", color="tab:purple")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3), useOffset=False)
    ax2 = ax.twinx()
    ax2.plot(steps, [r.get("momentum", float("nan")) for r in rows], color="tab:orange", label="momentum", **style)
    ax2.set_ylabel("momentum", color="tab:orange")
    ax2.ticklabel_format(axis="y", useOffset=False)
    ax.grid(alpha=0.3)
    figs.append(
        _Figure(
            "curves-schedules.png",
            figure_png(fig),
            alt="line plot of the learning rate (left axis) and momentum (right axis) against the training step",
            caption="The optimiser's schedules: learning rate (left axis) and momentum (right axis).",
        )
    )
    return figs


# ---------------------------------------------------------------------------- text sections


def _parzen_section(run_dir: Path, dataset_name: str, step: int) -> _Section:
    from advnets.evaluate.protocol import format_row, paper_row_for

    sec = _Section("Parzen-window log-likelihood (Table 1)", "parzen")
    path = run_dir / PARZEN_FILE
    command = f"`advnets evaluate --run {shlex.quote(str(run_dir))}`"
    hint = f"{command} computes it (add `--baselines` for reference rows)."
    if not path.is_file():
        sec.text(f"Not computed yet: {hint}")
        return sec
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        rows = doc["rows"]
        lines = [format_row(str(label), r) for label, r in rows.items()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        warnings.warn(f"report: {path} is not a readable Parzen result ({type(e).__name__}: {e})", stacklevel=2)
        sec.text(f"{path} could not be read ({type(e).__name__}: {e}); recompute it: {hint}")
        return sec
    protocol = doc.get("protocol") if isinstance(doc.get("protocol"), dict) else {}
    first = next(iter(rows.values()), None)
    if not isinstance(first, dict):
        sec.text(f"{path} holds no rows; recompute it: {hint}")
        return sec
    split = protocol.get("split", "test")
    sec.text(
        f"Mean log-likelihood of {first.get('n', '?')} {split} images under a Gaussian Parzen window on "
        f"{first.get('m', '?')} samples (d = {first.get('d', '?')}), σ chosen on {protocol.get('valid_size', '?')} "
        "validation images; mean ± std/√N. A Parzen score is not a measure of sample quality "
        "(Theis et al., 2016); the rows other than the model's, when present, score trivial 'models' by the same code."
    )
    paper = paper_row_for(dataset_name)
    if paper is not None:
        pname, (pm, pse) = paper
        note = " — a 5k subset: not comparable" if dataset_name.startswith("embedded") else ""
        lines.append(f"{'paper, Table 1 (' + pname + ')':<28s} {pm:8.1f} ± {pse:<6.1f}(full {pname}{note})")
    sec.pre("\n".join(lines))
    evaluated = doc.get("step")
    if evaluated is not None and evaluated != step:
        sec.text(
            f"Note: {PARZEN_FILE} was computed at step {evaluated}, the checkpoint is at step {step}; "
            f"rerun {command} to update it."
        )
    return sec


def _flatten(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(doc, dict) and doc:
        out = []
        for key, value in doc.items():
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return [(prefix, doc if isinstance(doc, str) else json.dumps(doc))]


def _config_section(config_doc: dict[str, Any]) -> _Section:
    sec = _Section("Configuration", "config")
    sec.text(f"The resolved configuration of the run ({CONFIG_FILE}).")
    sec.table(["key", "value"], [[k, v] for k, v in _flatten(config_doc)])
    return sec


def _timing_section(rows: list[dict[str, Any]], cfg: Any, step: int, config_doc: dict[str, Any]) -> _Section:
    import torch

    sec = _Section("Timings and environment", "environment")
    per_step = cfg.train.batch_size * (cfg.train.k if cfg.train.update == "alternating" else 1)
    facts = [["steps done", _step_text(step, config_doc, cfg)], ["training images per step", str(per_step)]]
    speeds = [(r, r["samples_per_s"]) for r in rows if isinstance(r.get("samples_per_s"), (int, float))]
    if speeds:
        values = np.array([s for _, s in speeds], dtype=float)
        facts.append(["training images / s", f"median {np.median(values):.0f}, last {values[-1]:.0f}"])
        seconds, prev = 0.0, 0
        for r, s in speeds:
            if s > 0:
                seconds += (r["step"] - prev) * per_step / s
            prev = r["step"]
        facts.append(["training time (from the logged throughput)", f"≈ {_duration(seconds)}"])
    facts.append(["training device (config)", str(cfg.train.device)])
    sec.table(["", ""], facts)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device += f" ({torch.cuda.get_device_name(0)})"
    import matplotlib

    env = [
        ["python", platform.python_version()],
        ["torch", torch.__version__],
        ["numpy", np.__version__],
        ["matplotlib", matplotlib.__version__],
        ["advnets", __version__],
        ["device of the nearest-neighbour search (G runs on cpu)", device],
        ["torch threads / CPU cores", f"{torch.get_num_threads()} / {os.cpu_count()}"],
        ["platform", platform.platform()],
    ]
    sec.text("The environment that wrote this report (training may have run elsewhere):")
    sec.table(["", ""], env)
    return sec


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------- rendering

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 1.5em; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre, code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.7em; overflow-x: auto; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure img.grid { image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #555; max-width: 720px; }
nav a { margin-right: 0.8em; }
"""


def _inline_code(text: str) -> str:
    """HTML-escaped ``text`` with `backquoted` spans as <code>."""
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def _html(sections: list[_Section], meta: dict[str, Any]) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(meta['title'])}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{e(meta['title'])}</h1>",
        "<table>",
        *(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta["facts"]),
        "</table>",
        "<nav>" + "".join(f'<a href="#{s.anchor}">{e(s.title)}</a>' for s in sections) + "</nav>",
    ]
    for sec in sections:
        out.append(f'<section id="{sec.anchor}">')
        out.append(f"<h2>{e(sec.title)}</h2>")
        for kind, block in sec.blocks:
            if kind == "p":
                out.append(f"<p>{_inline_code(block)}</p>")
            elif kind == "pre":
                out.append(f"<pre>{e(block)}</pre>")
            elif kind == "table":
                header, rows, numbers = block
                if any(header):
                    out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
                else:
                    out.append("<table>")
                for row in rows:
                    cells = [f"<th>{e(row[0])}</th>" if not any(header) else f"<td>{e(row[0])}</td>"]
                    cells += [
                        f'<td class="num">{e(c)}</td>' if numbers and _numeric(c) else f"<td>{e(c)}</td>"
                        for c in row[1:]
                    ]
                    out.append("<tr>" + "".join(cells) + "</tr>")
                out.append("</table>")
            else:
                fig: _Figure = block
                uri = "data:image/png;base64," + base64.b64encode(fig.png).decode("ascii")
                cls = ' class="grid"' if fig.pixelated else ""
                out.append(
                    f'<figure id="{e(fig.name.removesuffix(".png"))}"><img{cls} src="{uri}" alt="{e(fig.alt)}">'
                    f"<figcaption>{_inline_code(fig.caption)}</figcaption></figure>"
                )
        out.append("</section>")
    out += ["</main>", "</body>", "</html>", ""]
    return "\n".join(out)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_text(text: str) -> str:
    """Markdown-safe prose: escape the characters that would start markup, keep `code` spans."""
    parts = text.split("`")
    return "".join(f"`{p}`" if i % 2 else re.sub(r"([\\*_\[\]<])", r"\\\1", p) for i, p in enumerate(parts))


def _markdown(sections: list[_Section], meta: dict[str, Any], files_dir: str) -> str:
    out = [f"# {_md_text(meta['title'])}", "", "| | |", "|---|---|"]
    out += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in meta["facts"]]
    out.append("")
    for sec in sections:
        out += [f"## {_md_text(sec.title)}", ""]
        for kind, block in sec.blocks:
            if kind == "p":
                out += [_md_text(block), ""]
            elif kind == "pre":
                out += ["```", block, "```", ""]
            elif kind == "table":
                header, rows, _ = block
                out.append("| " + " | ".join(_md_cell(h) or " " for h in header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
            else:
                fig: _Figure = block
                alt = fig.alt.replace("[", "(").replace("]", ")")
                out += [f"![{alt}]({files_dir}/{fig.name})", "", f"*{_md_text(fig.caption)}*", ""]
    return "\n".join(out)
