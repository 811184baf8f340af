"""MkDocs hooks (mkdocs.yml ``hooks:``): the CLI reference page, rendered from the argparse parsers at build time,
and the repository files outside docs/ that the pages link to.

docs/reference/cli.md holds a short introduction and the marker line ``<!-- advnets-cli-reference -->``;
``on_page_markdown`` replaces the marker with every command, subcommand and option that
:func:`advnets.cli.build_parser` defines: usage, description, each option's flags, metavar or choices,
default and help, and the examples of the epilog. Nothing on the page is copied by hand, so it cannot drift
from ``advnets COMMAND --help``; tests/test_docs_site.py checks that it names every parser and option.

The pages are also read on GitHub, where they link to files beside docs/ (``../README.md``,
``../benchmarks/RESULTS.md``). MkDocs cannot serve those, so ``on_files`` adds each file of :data:`OUTSIDE`
to the site as a page of its own and ``on_page_markdown`` points the links there: the README's links go to
the site's home (docs/index.md, the same front door), benchmarks/RESULTS.md becomes results.md. A link to
any other file outside docs/ is left alone, so the strict build still fails on it.
"""

from __future__ import annotations

import argparse
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
# repository path -> (site page, whether the hook copies the file in as that page)
OUTSIDE = {"README.md": ("index.md", False), "benchmarks/RESULTS.md": ("results.md", True)}
_LINK = re.compile(r"\]\((?P<target>\.\./[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")

MARKER = "<!-- advnets-cli-reference -->"
CLI_PAGE = "reference/cli.md"

# Characters Markdown would read as markup inside a table cell or a paragraph of help text.
_MARKUP = re.compile(r"([\\`*_\[\]<>|#])")


def on_files(files, config):
    """Add the files of :data:`OUTSIDE` that the site copies in (benchmarks/RESULTS.md as results.md)."""
    for source, (page, copied) in OUTSIDE.items():
        if copied:
            files.append(File.generated(config, page, abs_src_path=str(ROOT / source)))
    return files


def site_links(markdown: str, src_uri: str) -> str:
    """``markdown`` of the page ``docs/<src_uri>`` with its links to :data:`OUTSIDE` files pointed at their
    site pages (``../README.md#x`` from ``data.md`` -> ``index.md#x``); every other link unchanged."""
    here = posixpath.dirname(posixpath.join("docs", src_uri))

    def point(match: re.Match) -> str:
        target = posixpath.normpath(posixpath.join(here, match["target"]))
        if target not in OUTSIDE:
            return match[0]
        page = posixpath.relpath(OUTSIDE[target][0], posixpath.dirname(src_uri) or ".")
        return f"]({page}{match['anchor'] or ''})"

    return _LINK.sub(point, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' hook signature)
    """Point links to files outside docs/ at their site pages; on the CLI page, put the generated reference
    where its marker is.

    Raises:
        ValueError: the CLI page lost its marker (the build would otherwise publish a page without the reference).
    """
    markdown = site_links(markdown, page.file.src_uri)
    if page.file.src_uri != CLI_PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{CLI_PAGE}: the marker {MARKER} is missing; the CLI reference has nowhere to go")
    from advnets.cli import build_parser

    return markdown.replace(MARKER, render_cli_reference(build_parser()))


def escape(text: str) -> str:
    """``text`` as literal Markdown: markup characters escaped, line breaks folded into spaces."""
    return _MARKUP.sub(r"\\\1", " ".join(text.split()))


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("advnets",), summary: str = ""):
    """Every parser under ``parser``, depth first in --help order: ``(command words, parser, what it does)``;
    what it does is the parser's description, else the one line its parent's listing gives it."""
    yield path, parser, parser.description or summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                yield from walk(child, (*path, name), helps.get(name, ""))


def _flags(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    """``--epochs N`` / ``name {mnist,cifar10}``: how the option is written on the command line."""
    formatter = parser._get_formatter()
    if action.option_strings:
        spelled = ", ".join(action.option_strings)
        if action.nargs != 0:
            spelled += " " + formatter._format_args(action, action.dest.upper())
        return spelled
    metavar = formatter._metavar_formatter(action, action.dest)(1)[0]
    return action.dest if metavar == action.dest else f"{action.dest} {metavar}"  # name {mnist,cifar10}


def _default(action: argparse.Action) -> str:
    if action.option_strings and action.nargs == 0:  # a switch: store_true / store_false / count
        return ""
    if action.default is None or action.default is argparse.SUPPRESS or action.required:
        return ""
    return f"`{action.default}`"


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        help_text = formatter._expand_help(action) if action.help else ""
        required = " (required)" if action.option_strings and action.required else ""
        rows.append(f"| `{_flags(action, parser)}` | {escape(help_text)}{required} | {_default(action)} |")
    return rows


def _section(path: tuple[str, ...], parser: argparse.ArgumentParser, summary: str) -> list[str]:
    level = "#" * min(len(path) + 1, 4)  # advnets: h2, advnets train: h3, advnets data fetch: h4
    lines = [f"{level} `{' '.join(path)}`", ""]
    if summary:
        lines += [escape(summary), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    rows = _option_rows(parser)
    if rows:
        lines += ["| option | what | default |", "|---|---|---|", *rows, ""]
    if parser.epilog:
        lines += ["```text", parser.epilog.rstrip(), "```", ""]
    return lines


def render_cli_reference(parser: argparse.ArgumentParser) -> str:
    """Markdown for every parser under ``parser``: a heading per command, its usage, an options table
    (flags, help with ``%(default)s`` expanded, default) and its examples."""
    lines: list[str] = []
    for path, sub, summary in walk(parser):
        lines += _section(path, sub, summary)
    return "\n".join(lines)
