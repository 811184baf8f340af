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

import re
from pathlib import Path

from advnets.errors import AdvnetsError
from advnets.io import atomic_write_bytes, write_failure
from advnets.report.content import build
from advnets.report.page import render_html, render_markdown
from advnets.runs import open_run

__all__ = ["write_report"]


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

    sections, meta = build(run_dir, config_doc, seed=seed, nearest_n=nearest_n, check_size=check_size)

    markdown = render_markdown(sections, meta, files_dir.name).encode("utf-8")
    page = render_html(sections, meta).encode("utf-8")
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
        raise AdvnetsError(write_failure(e.filename or out, e, "report file")) from e
    return out, md_path


def _glob_escape(text: str) -> str:
    """``text`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)
