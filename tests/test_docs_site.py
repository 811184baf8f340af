"""The documentation site (issue 30): it builds strictly, its CLI reference covers every parser and option,
and every page under docs/ is in the nav.

The site is built once, for real (``mkdocs build --strict`` into a temporary directory), and read back as
HTML. The parsers are walked here independently of the hook that renders the page (scripts/mkdocs_hooks.py).
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advnets.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# docs/*.md files deliberately not in the nav (none today): name each here with the reason.
NOT_IN_NAV: dict[str, str] = {}


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = build(ROOT / "mkdocs.yml", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ("advnets",)):
    """(command words, parser) for the parser and every subcommand under it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*words, name))


def sections(page: str) -> dict[str, str]:
    """The CLI page's text, split at its command headings: {"advnets data fetch": that section's text}."""
    parts = re.split(r'<h[234] id="[^"]*"><code>(advnets[^<]*)</code>', page)
    return {parts[i]: html.unescape(re.sub(r"<[^>]+>", " ", parts[i + 1])) for i in range(1, len(parts), 2)}


def test_cli_reference_names_every_command_and_option(site):
    page = sections((site / "reference" / "cli" / "index.html").read_text())
    walked = list(parsers(build_parser()))
    assert {"advnets train", "advnets data fetch", "advnets evaluate"} <= {" ".join(w) for w, _ in walked}
    assert set(page) == {" ".join(words) for words, _ in walked}
    for words, parser in walked:
        text = page[" ".join(words)]
        assert parser.format_usage().split()[1] in text  # the usage block
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue  # hidden on purpose (subcommands' --debug), or the subcommands' own sections
            for flag in action.option_strings or [action.dest]:
                assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), f"{' '.join(words)}: {flag}"
            if action.help:
                first_words = " ".join(action.help.split()[:4])
                if "%(" not in first_words:
                    assert first_words in " ".join(text.split()), f"{' '.join(words)}: help of {action.dest}"
            if action.choices and action.option_strings:
                assert all(str(c) in text for c in action.choices)


def test_cli_reference_shows_defaults_and_examples(site):
    page = sections((site / "reference" / "cli" / "index.html").read_text())
    fetch = page["advnets data fetch"]
    assert re.search(r"--timeout S\s+connect/read timeout[^\n]*\(default 30\)\s+30\.0\s", fetch)
    assert "advnets data fetch cifar10 --data-dir /data" in page["advnets data"]  # the epilog's examples


def nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [p for item in node for p in nav_pages(item)]
    return [p for value in node.values() for p in nav_pages(value)]


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = nav_pages(config["nav"])
    assert len(nav) == len(set(nav)), "a page is in the nav twice"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - set(nav) == set(NOT_IN_NAV)
    missing = {p for p in nav if p not in pages} - {"results.md"}  # results.md: benchmarks/RESULTS.md, by the hook
    assert not missing
    tutorials = nav_pages(next(item["Tutorials"] for item in config["nav"] if "Tutorials" in item))
    names = ("first-gan", "reproduce-table1", "own-images", "evaluate-samples", "resume-and-scale")
    assert tutorials == [f"tutorials/{name}.md" for name in names]


def test_links_out_of_docs_reach_site_pages(site):
    """docs pages link to ../README.md and ../benchmarks/RESULTS.md (as GitHub shows them); on the site those
    links reach the home page and the copy of RESULTS.md the hook adds."""
    assert "](../benchmarks/RESULTS.md)" in (DOCS / "performance.md").read_text()
    performance = (site / "performance" / "index.html").read_text()
    assert 'href="../results/"' in performance and "RESULTS.md" not in re.findall(r'href="([^"]*)"', performance)
    first_heading = next(line for line in (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines() if line)
    assert html.escape(first_heading.lstrip("# ").strip(), quote=False) in (site / "results" / "index.html").read_text()


def test_site_links_follow_the_page_depth():
    """The hook's rewriting, alone: a link to a repository file it serves, from a page at docs/ or below it."""
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    site_links = hooks.site_links
    assert site_links("[home](../README.md)", "data.md") == "[home](index.md)"
    assert site_links("[r](../../benchmarks/RESULTS.md#table-1)", "tutorials/x.md") == "[r](../results.md#table-1)"
    unchanged = "[n](../benchmarks/NOTES.md) [p](runs.md) [t](../src/advnets/cli/train.py)"
    assert site_links(unchanged, "data.md") == unchanged  # not served: the strict build reports them


def test_api_reference_renders_the_public_api(site):
    text = "".join(p.read_text() for p in (site / "reference" / "api").rglob("index.html"))
    for name in (
        "train_run",
        "plan_run",
        "load_generator",
        "evaluate_pretrained",
        "parzen_log_likelihood",
        "MetricOptions",
        "RunConfig",
        "load_dataset",
        "write_report",
        "AdvnetsError",
    ):
        assert re.search(rf'id="advnets\.[\w.]*\b{name}"', text), name
    assert "train_run(" in html.unescape(re.sub(r"<[^>]+>", "", text))  # the signatures are rendered
    assert not re.search(r":(func|class|mod|meth|data|attr):", text)  # roles read as code (scripts/griffe_roles.py)


@pytest.mark.slow
def test_a_broken_link_fails_the_strict_build(tmp_path):
    """Strict mode is on: the same site with one page linking to a page that does not exist does not build."""
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    (docs / "data.md").write_text((docs / "data.md").read_text() + "\n[gone](no-such-page.md)\n")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.update(docs_dir=str(docs), hooks=[str(ROOT / "scripts" / "mkdocs_hooks.py")])
    python = config["plugins"][1]["mkdocstrings"]["handlers"]["python"]
    python["paths"] = [str(ROOT / "src")]
    python["options"]["extensions"] = [str(ROOT / "scripts" / "griffe_roles.py") + ":SphinxRoles"]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "no-such-page.md" in output and "strict mode" in output
    assert output.count("WARNING") == 1, output  # the broken link, and nothing else stopped the build
