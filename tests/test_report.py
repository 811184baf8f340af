"""The run report (report.py): one self-contained HTML page and its Markdown twin."""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from PIL import Image

from advnets.config import override
from advnets.errors import AdvnetsError, CheckpointError
from advnets.report import write_report
from advnets.report.content import training_rows
from conftest import tiny_config

FIGURES = (
    "curves-loss",
    "curves-d-outputs",
    "curves-schedules",
    "curves-collapse",
    "samples-latest",
    "figure2-nearest",
    "figure3-interpolation",
)


class _Page(HTMLParser):
    """Everything the tests look at: tags, URL-valued attributes, images by figure, captions, text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.figures: dict[str, dict[str, str]] = {}
        self.text: list[str] = []
        self._figure: str | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "action", "poster", "data")]
        if tag == "figure":
            self._figure = a.get("id") or ""
            self.figures[self._figure] = {"caption": ""}
        elif tag == "img":
            self.images.append({"src": a.get("src"), "alt": a.get("alt"), "figure": self._figure})
            if self._figure is not None:
                self.figures[self._figure]["src"] = a.get("src") or ""
        elif tag == "figcaption":
            self._in_caption = True

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        elif tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_caption and self._figure is not None:
            self.figures[self._figure]["caption"] += data


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def png_of(uri: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:60]
    try:
        return base64.b64decode(uri[len(prefix) :], validate=True)
    except binascii.Error as e:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"not valid base64: {e}") from e


def open_png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    img.load()
    return img


def no_temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits) -> Path:
    """A real (tiny) run on the 8x8 digits, laid out as `advnets train` lays it out."""
    from advnets.train import Trainer

    run_dir = tmp_path_factory.mktemp("report") / "run"
    run_dir.mkdir()
    cfg = tiny_config(epochs=2, log_every=10, sample_every=50)
    cfg = override(cfg, data=override(cfg.data, source="embedded-digits"))
    torch.manual_seed(0)
    trainer = Trainer(cfg, digits)
    trainer.fit(run_dir=run_dir, progress=False, tensorboard=False)  # config.json too
    return run_dir


@pytest.fixture(scope="module")
def report(run) -> tuple[Path, Path]:
    """The default report of the run (written into the run directory)."""
    return write_report(run)


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("report*"))
    return dest


def test_default_paths_are_report_html_and_md_in_the_run_directory(run, report):
    html_path, md_path = report
    assert html_path == run / "report.html" and md_path == run / "report.md"
    assert html_path.is_file() and md_path.is_file()
    assert sorted(p.name for p in (run / "report_files").iterdir()) == sorted(f"{f}.png" for f in FIGURES)
    assert not no_temp_files(run)


def test_html_embeds_every_figure_as_a_decodable_png_with_alt_text_and_caption(report):
    page = parse(report[0])
    assert set(page.figures) == set(FIGURES)
    assert len(page.images) == len(FIGURES)
    for img in page.images:
        assert img["alt"] and img["alt"].strip(), img
        assert img["figure"] in FIGURES
        picture = open_png(png_of(img["src"] or ""))
        assert picture.width >= 60 and picture.height >= 60, (img["figure"], picture.size)
    for name, fig in page.figures.items():
        assert len(fig["caption"].strip()) > 30, name
    assert page.figures["figure2-nearest"]["caption"].startswith("Figure 2: fair random samples (seed 0)")
    assert "nearest training example" in page.figures["figure2-nearest"]["caption"]
    assert page.figures["figure3-interpolation"]["caption"].startswith("Figure 3:")


def test_html_is_self_contained(report):
    text = report[0].read_text(encoding="utf-8")
    page = parse(report[0])
    assert page.tags[0] == "html" and text.rstrip().endswith("</html>")
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert "style" in page.tags
    for url in page.urls:
        assert url.startswith(("data:image/png;base64,", "#")), url[:80]
        assert not re.match(r"(?i)\s*(https?:)?//", url), url
    style = text[text.index("<style>") : text.index("</style>")]
    assert "url(" not in style and "@import" not in style


def test_html_states_the_run_its_dataset_step_config_and_environment(run, report, digits):
    import numpy as np

    import advnets
    from advnets.checkpoint import load_checkpoint, resolve_checkpoint

    page = " ".join(parse(report[0]).text)
    step = load_checkpoint(resolve_checkpoint(run))["step"]
    for needle in (
        str(run.resolve()),
        digits.name,
        f"{step} of {step}",
        advnets.__version__,
        "train.batch_size",
        "embedded-digits",
        torch.__version__,
        np.__version__,
        "memorisation",
        "training images / s",
    ):
        assert needle in page, needle


def markdown_images(md_path: Path) -> tuple[list[tuple[str, str]], int]:
    """The (alt, src) of every image a CommonMark renderer (markdown-it-py) finds in a Markdown file, and how
    many links of any kind it finds."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(md_path.read_text(encoding="utf-8"))
    inline = [child for t in tokens for child in (t.children or [])]
    images = [(t.content, t.attrGet("src")) for t in inline if t.type == "image"]
    return images, len(images) + sum(t.type == "link_open" for t in inline)


def test_markdown_twin_links_only_existing_relative_pngs_matching_the_html(report):
    html_path, md_path = report
    md = md_path.read_text(encoding="utf-8")
    images, links = markdown_images(md_path)
    assert len(images) == len(FIGURES) and links == len(images)
    embedded = {png_of(f["src"]) for f in parse(html_path).figures.values()}
    for alt, target in images:
        assert alt.strip()
        assert not re.match(r"(?i)[a-z][a-z0-9+.-]*:", target) and not target.startswith("/"), target
        path = md_path.parent / unquote(target)
        assert path.is_file(), target
        assert path.read_bytes() in embedded, target
        open_png(path.read_bytes())
    assert "Figure 2: fair random samples (seed 0)" in md and "Figure 3:" in md


@pytest.mark.parametrize("name", ["my report ü #.html", "100% (final) [v2].html"])
def test_markdown_links_to_a_report_with_spaces_and_other_characters_in_its_name_resolve(run, tmp_path, name):
    """A report named with a space, '#', '%', brackets or a non-ASCII letter: a CommonMark renderer finds every
    image, and each src (a URL, so percent-decoded) names a PNG that exists."""
    out = tmp_path / "out dir" / name
    _, md_path = write_report(copy_run(run, tmp_path / "run"), out)
    images, links = markdown_images(md_path)
    assert len(images) == len(FIGURES) and links == len(images), md_path.read_text(encoding="utf-8")[:2000]
    files = sorted(unquote(src) for _, src in images)
    assert files == sorted(f"{out.stem}_files/{f}.png" for f in FIGURES)
    assert all((md_path.parent / f).is_file() for f in files)


def test_without_parzen_json_both_files_say_how_to_compute_it(report):
    for path in report:
        assert "advnets evaluate --run" in path.read_text(encoding="utf-8")


def test_parzen_result_appears_in_both_files(run, tmp_path, digits):
    from advnets.evaluate.parzen import parzen_evaluate
    from advnets.generators import load_generator

    run_dir = copy_run(run, tmp_path / "run")
    model = load_generator(run_dir)
    state = {"step": model.step}
    samples = model.sample(300, 0)
    result = parzen_evaluate(digits.test, samples, valid=digits.valid, sigmas=[0.1, 0.2, 0.4])
    label = f"adversarial nets (step {state['step']})"
    doc = {
        "protocol": {"split": "test", "valid_size": len(digits.valid)},
        "step": state["step"],
        "rows": {label: result},
    }
    (run_dir / "parzen.json").write_text(json.dumps(doc))
    html_path, md_path = write_report(run_dir, tmp_path / "out" / "r.html")
    assert md_path == tmp_path / "out" / "r.md" and (tmp_path / "out" / "r_files").is_dir()
    expected = f"{result['mean']:.1f} ± {result['se']:.1f}"
    for path in (html_path, md_path):
        text = path.read_text(encoding="utf-8")
        assert expected in text, path
        assert label in text
        assert "advnets evaluate --run" not in text


def test_parzen_json_from_an_older_step_is_flagged(run, tmp_path):
    run_dir = copy_run(run, tmp_path / "run")
    row = {"mean": 123.456, "se": 7.89, "sigma": 0.2, "n": 10, "m": 20, "d": 64}
    (run_dir / "parzen.json").write_text(json.dumps({"step": 1, "rows": {"adversarial nets (step 1)": row}}))
    html_path, md_path = write_report(run_dir)
    for path in (html_path, md_path):
        text = path.read_text(encoding="utf-8")
        assert "123.5 ± 7.9" in text and "computed at step 1" in text


def test_not_a_run_raises_a_clear_error_naming_the_directory(tmp_path, run):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdvnetsError, match=re.escape(str(empty))):
        write_report(empty)
    with pytest.raises(AdvnetsError, match="no such run directory"):
        write_report(tmp_path / "missing")
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(run / "config.json", untrained / "config.json")
    with pytest.raises(CheckpointError, match=re.escape(str(untrained)) + ".*no checkpoint"):
        write_report(untrained)
    with pytest.raises(AdvnetsError, match=r"\.html"):
        write_report(run, tmp_path / "report.txt")
    assert list(empty.iterdir()) == [] and sorted(p.name for p in untrained.iterdir()) == ["config.json"]


def test_a_failed_report_leaves_the_previous_one_intact_and_no_temporary_files(run, tmp_path, monkeypatch):
    import advnets.evaluate.scoring

    run_dir = copy_run(run, tmp_path / "run")
    html_path, md_path = write_report(run_dir)
    before = {p: p.read_bytes() for p in (html_path, md_path, *sorted((run_dir / "report_files").iterdir()))}
    (run_dir / ".report.html.stale.tmp").write_bytes(b"<html>half")  # a kill mid-write, long ago

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure while computing the report")

    monkeypatch.setattr(advnets.evaluate.scoring, "memorization_stats", boom)
    with pytest.raises(RuntimeError, match="simulated failure"):
        write_report(run_dir, seed=1)
    assert {p: p.read_bytes() for p in before} == before
    monkeypatch.undo()

    real_replace = os.replace

    def fail_on_html(src, dst):
        if str(dst).endswith(".html"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_html)
    with pytest.raises(AdvnetsError, match=r"could not write report .*report\.html: No space left"):
        write_report(run_dir, seed=1)
    monkeypatch.undo()
    assert html_path.read_bytes() == before[html_path]  # the page is the old one, whole
    assert not no_temp_files(run_dir)

    write_report(run_dir, seed=1)  # replaced whole
    new = html_path.read_text(encoding="utf-8")
    assert new.rstrip().endswith("</html>") and "seed 1" in new and new.encode() != before[html_path]
    assert not no_temp_files(run_dir)


def test_figures_two_and_three_are_reproducible_from_the_seed(run, tmp_path, report):
    again = write_report(run, tmp_path / "again.html", seed=0, nearest_n=100)
    other = write_report(run, tmp_path / "other.html", seed=1, nearest_n=100)
    figs = [parse(p[0]).figures for p in (report, again, other)]
    for name in ("figure2-nearest", "figure3-interpolation"):
        assert figs[0][name]["src"] == figs[1][name]["src"]
        assert figs[0][name]["src"] != figs[2][name]["src"]
    assert figs[0]["samples-latest"]["src"] == figs[2]["samples-latest"]["src"]  # the run's own grid


def test_curves_use_training_rows_only_and_the_history_after_a_resume():
    def row(step, **kw):
        return {"step": step, "d_loss": 0.6, "g_loss": 0.7, "d_real": 0.5, "d_fake": 0.5, **kw}

    metrics = [
        row(10),
        row(20),
        row(30),
        {"step": 30, "parzen_ll": 12.0, "parzen_se": 1.0},  # from `advnets evaluate`
        row(20, tag="resumed"),  # resumed from the checkpoint at step 10: 20 and 30 were redone
        row(30, tag="resumed"),
        {"step": 40},  # not a training row
    ]
    rows = training_rows(metrics)
    assert [(r["step"], r.get("tag")) for r in rows] == [(10, None), (20, "resumed"), (30, "resumed")]
