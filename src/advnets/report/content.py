"""What a run report says: the sections built from a run directory (training curves, the
latest grid, Figures 2 and 3, the memorisation check, the Parzen result, the configuration
and the timings), each a :class:`~advnets.report.page.Section` for the renderers."""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shlex
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from advnets import __version__
from advnets.devices import describe_device, resolve_device
from advnets.errors import DataError
from advnets.generators import load_generator
from advnets.report.curves import collapse_figure, curve_figures
from advnets.report.page import Figure, Section
from advnets.runlog import read_metrics
from advnets.runs import CONFIG_FILE

PARZEN_FILE = "parzen.json"
QUALITY_FILE = "quality.json"  # the table of `advnets evaluate --run DIR --metrics ...` (issue 17)
INTERP_ROWS = 10  # Figure 3: paths in z ...
INTERP_STEPS = 10  # ... and images per path, as `advnets sample --interpolate`
_GRID = re.compile(r"^step-(\d+)\.png$")


def build(
    run_dir: Path, config_doc: dict[str, Any], *, seed: int, nearest_n: int, check_size: int
) -> tuple[list[Section], dict[str, Any]]:
    """The report's sections and its header facts (``meta``) for a run's latest checkpoint."""
    model = load_generator(run_dir)
    g, cfg, step, shape = model.generator, model.config, model.step, model.image_shape
    dataset_name = str(config_doc.get("dataset") or model.dataset or cfg.data.source)
    metrics = read_metrics(run_dir)
    rows = training_rows(metrics)
    scale, padding = _grid_scale(shape), _grid_padding(shape)
    ckpt = model.source  # the checkpoint read, even if a training run has written a newer one since
    now = datetime.now(timezone.utc)

    meta = {
        "title": f"advnets report: {run_dir.resolve().name}",
        "facts": [
            ("run directory", str(run_dir.resolve())),
            ("dataset", dataset_name),
            ("step", _step_text(step, config_doc, cfg)),
            ("checkpoint", f"{ckpt.name}, written {_mtime(ckpt)}"),
            ("report written", now.strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("advnets", f"{__version__} (the checkpoint was written by {model.version or 'an unknown version'})"),
            ("seed of Figures 2 and 3", str(seed)),
        ],
    }
    data, data_error = _training_data(cfg, shape)  # Figure 2 and the memorisation check need it
    sections = [
        _curves_section(run_dir, rows, metrics, cfg),
        _samples_section(run_dir, scale),
        _figure2_section(g, data, data_error, cfg, shape, seed=seed, n=nearest_n, scale=scale, padding=padding),
        _figure3_section(g, cfg, shape, seed=seed, scale=scale, padding=padding),
        _memorisation_section(model, data, data_error, seed=seed, check_size=check_size),
        _parzen_section(run_dir, dataset_name, step),
        *_quality_section(run_dir, step),
        _config_section(config_doc),
        _timing_section(rows, cfg, step, config_doc),
    ]
    return sections, meta


def _curves_section(run_dir: Path, rows: list[dict[str, Any]], metrics: list[dict[str, Any]], cfg: Any) -> Section:
    sec = Section("Training curves", "curves")
    if rows:
        last = rows[-1]
        sec.text(
            f"{len(rows)} logged rows (every {cfg.train.log_every} steps; each the mean over the steps since the "
            f"previous row) up to step {last['step']}. Last row: D loss {last['d_loss']:.4f}, "
            f"G loss {last['g_loss']:.4f}, mean D(x) {last['d_real']:.3f}, mean D(G(z)) {last['d_fake']:.3f}."
        )
        for fig in curve_figures(rows, cfg.train.g_loss):
            sec.figure(fig)
        collapse = collapse_figure(metrics)
        if collapse is not None:
            sec.figure(collapse)
    else:
        sec.text(f"{run_dir / 'metrics.jsonl'} holds no training rows: nothing to plot.")
    return sec


def _samples_section(run_dir: Path, scale: int) -> Section:
    """The latest fixed-noise grid that training wrote."""
    sec = Section("Samples during training", "samples")
    grid = _latest_grid(run_dir)
    grid_png = _enlarge_png(grid[1].read_bytes(), scale // 2) if grid else None  # training writes at zoom 2
    if grid is None:
        sec.text(f"No sample grid in {run_dir / 'samples'} (samples/step-NNNNNNNN.png).")
    elif grid_png is None:
        sec.text(f"{grid[1]} is not a readable PNG image.")
    else:
        grid_step, grid_path = grid
        sec.figure(
            Figure(
                "samples-latest.png",
                grid_png,
                alt=f"10 x 10 grid of generated samples at step {grid_step}",
                caption=f"Samples at step {grid_step} ({grid_path.name}): G applied to the run's fixed batch of "
                "100 noise vectors, the same batch at every step, so that grids from different steps compare; "
                "not cherry-picked.",
                pixelated=True,
            )
        )
    return sec


def _training_data(cfg: Any, shape: tuple[int, ...]) -> tuple[Any, str]:
    """``(dataset, "")``, or ``(None, why)`` when the run's data cannot be loaded or no longer fit it."""
    from advnets.data import load_dataset

    try:
        data = load_dataset(cfg.data)
    except DataError as e:
        warnings.warn(
            f"report: training data unavailable, Figure 2 and the memorisation check skipped: {e}", stacklevel=3
        )
        return None, str(e)
    if tuple(data.image_shape) != shape:
        return (
            None,
            f"data source {cfg.data.source!r} now gives {data.image_shape} images, the checkpoint makes {shape}",
        )
    return data, ""


def _figure2_section(
    g: Any, data: Any, data_error: str, cfg: Any, shape: tuple[int, ...], *, seed: int, n: int, scale: int, padding: int
) -> Section:
    from advnets.data import to_display
    from advnets.figures import nearest_grid, png_bytes
    from advnets.sampling import generate, grid_columns, nearest_figure

    sec = Section("Figure 2: samples and their nearest training examples", "figure2")
    if data is None:
        sec.text(f"Skipped: {data_error}.")
        return sec
    columns = grid_columns(n) + 1
    n_rows = -(-n // (columns - 1))
    images, neighbours = nearest_figure(generate(g, n_rows * (columns - 1), seed, shape), data.train, columns)
    dist = neighbours["distance"]
    sec.figure(
        Figure(
            "figure2-nearest.png",
            png_bytes(nearest_grid(to_display(images, cfg.data.preprocess), columns, padding=padding), scale=scale),
            alt=f"{n_rows} rows of {columns - 1} generated samples, each row ending with the training image "
            "nearest to its last sample",
            caption=f"Figure 2: fair random samples (seed {seed}); rightmost column, after the red bar: the "
            f"nearest training example (Euclidean distance in pixel space, exact, over all {len(data.train)} "
            f"training images) of the sample beside it. Not cherry-picked. Distances: median "
            f"{float(np.median(dist)):.3f}, min {min(dist):.3f}. Same samples as "
            f"`advnets sample --run DIR --nearest -n {n} --seed {seed}`.",
            pixelated=True,
        )
    )
    return sec


def _figure3_section(g: Any, cfg: Any, shape: tuple[int, ...], *, seed: int, scale: int, padding: int) -> Section:
    from advnets.data import to_display
    from advnets.figures import image_grid, png_bytes
    from advnets.sampling import interpolate

    sec = Section("Figure 3: paths in z space", "figure3")
    images = to_display(interpolate(g, INTERP_ROWS, INTERP_STEPS, seed, shape), cfg.data.preprocess)
    sec.figure(
        Figure(
            "figure3-interpolation.png",
            png_bytes(image_grid(images, nrow=INTERP_STEPS, padding=padding), scale=scale),
            alt=f"{INTERP_ROWS} rows of {INTERP_STEPS} samples, each row a straight path between two noise vectors",
            caption=f"Figure 3: each row is G along a straight line in z space between two random noise vectors "
            f"(seed {seed}), endpoints included, in {INTERP_STEPS} equal steps. Same samples as "
            f"`advnets sample --run DIR --interpolate --seed {seed}`.",
            pixelated=True,
        )
    )
    return sec


def _memorisation_section(model: Any, data: Any, data_error: str, *, seed: int, check_size: int) -> Section:
    sec = Section("Memorisation check", "memorisation")
    if data is None:
        sec.text(f"Skipped: {data_error}.")
        return sec
    if len(data.test) == 0:
        sec.text("Skipped: the dataset has no test split to compare with.")
        return sec
    from advnets.evaluate.nearest import memorization_verdict
    from advnets.evaluate.scoring import memorization_check

    check = memorization_check(model, data.train, data.test, seed, check_size)
    s, h = check["samples"], check["heldout"]
    sec.text(
        f"Distance from each of {h['n']} samples of G (seed {seed}, as Figure 2) and of {h['n']} held-out "
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
    sec.text(
        f"Ratio of medians (samples / held-out): {check['ratio']:.3f}; fraction of samples closer than 95% of "
        f"held-out images: {check['frac_below_heldout_p5']:.3f}. Verdict: {memorization_verdict(check['ratio'])}."
    )
    return sec


def training_rows(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


# ---------------------------------------------------------------------------- text sections


def _parzen_section(run_dir: Path, dataset_name: str, step: int) -> Section:
    from advnets.evaluate.protocol import format_row, paper_row_for

    sec = Section("Parzen-window log-likelihood (Table 1)", "parzen")
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


def _quality_section(run_dir: Path, step: int) -> list[Section]:
    """The sample-quality table of RUN/quality.json (none when the run has none): the model's row and
    the context rows, as ``advnets evaluate --metrics`` printed them."""
    from advnets.evaluate.metrics import format_table

    path = run_dir / QUALITY_FILE
    if not path.is_file():
        return []
    sec = Section("Sample-quality metrics (FD, KID, precision/recall, ...)", "quality")
    command = f"`advnets evaluate --run {shlex.quote(str(run_dir))} --metrics all`"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        table = format_table(doc["rows"], doc["metrics"])
    except Exception as e:  # a damaged file must not stop the report: say so, and how to remake it
        warnings.warn(f"report: {path} is not a readable metrics table ({type(e).__name__}: {e})", stacklevel=2)
        sec.text(f"{path} could not be read ({type(e).__name__}: {e}); recompute it: {command}.")
        return [sec]
    context = (
        " The rows below the model's score real training images (the floor a perfect G reaches at this N), "
        "k-means centroids and a Gaussian fit by the same code."
        if len(doc["rows"]) > 1
        else f" Only the model's row (computed with --no-context); {command} adds the reference rows."
    )
    sec.text(
        f"{doc.get('num_samples', '?')} images per row, features: {doc.get('features') or 'none'} "
        f"(docs/metrics.md).{context}"
    )
    sec.pre(table)
    if doc.get("step") is not None and doc["step"] != step:
        sec.text(f"Note: computed at step {doc['step']}, the checkpoint is at step {step}; rerun {command}.")
    return [sec]


def _flatten(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(doc, dict) and doc:
        out = []
        for key, value in doc.items():
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return [(prefix, doc if isinstance(doc, str) else json.dumps(doc))]


def _config_section(config_doc: dict[str, Any]) -> Section:
    sec = Section("Configuration", "config")
    sec.text(f"The resolved configuration of the run ({CONFIG_FILE}).")
    sec.table(["key", "value"], [[k, v] for k, v in _flatten(config_doc)])
    return sec


def _timing_section(rows: list[dict[str, Any]], cfg: Any, step: int, config_doc: dict[str, Any]) -> Section:
    import torch

    sec = Section("Timings and environment", "environment")
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

    device = describe_device(resolve_device("auto"))
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
