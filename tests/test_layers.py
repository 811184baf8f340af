"""The package's import direction: a lower layer never imports a higher one.

Every ``import`` of every module is read with ``ast`` (imports inside functions too, which
hide cycles from Python itself) and checked against the layer table below. A new module
must be placed in the table, which is the point: its place is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import advnets

SRC = Path(advnets.__file__).resolve().parent

# Low -> high. A module belongs to the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # `advnets` itself: __version__, and the public names, resolved lazily by importlib, not imported.
    ("ground", ("advnets", "advnets.errors", "advnets.io", "advnets.devices")),
    (
        "core",
        (
            "advnets.config",
            "advnets.presets",  # the reference code's hyperparameters, over config
            "advnets.nets",
            "advnets.losses",
            "advnets.conditioning",
            "advnets.inpaint",  # §7.3's masks and G's input for them: conditioning builds on it
            # The metrics are functions of arrays (they import nothing above io), so training's
            # collapse monitor may use them; the run-level protocol is higher up (evaluate.protocol).
            "advnets.evaluate.distances",
            "advnets.evaluate.chunks",  # block sizes for a memory budget, under distances
            "advnets.evaluate.parzen",
            "advnets.evaluate.nearest",
            "advnets.evaluate.diversity",
            "advnets.evaluate.modes",
            "advnets.evaluate.classifier_cache",  # the classifier's cache files, under classifier
            "advnets.evaluate.classifier",
            # Issue 17's metrics on features and the shipped feature network: functions of arrays too,
            # so the validation monitor (train.validation) may log them during training.
            "advnets.evaluate.frechet",
            "advnets.evaluate.kid",
            "advnets.evaluate.manifold",
            "advnets.evaluate.digit_features",
            "advnets.evaluate.features",
            "advnets.evaluate.metrics",
            "advnets.evaluate.inputs",  # images and rows as the metrics take them: one coercer of each
            "advnets.evaluate.options",  # how metrics compute (dtype, device, blocks): a dataclass of settings
        ),
    ),
    # sampling is "the one way to draw from G" (nets + conditioning), so training's progress
    # grids may use it: it sits below training, not beside evaluate.
    # generators: "a generator ready to sample" from a run, a checkpoint or a shipped model (pretrained's
    # registry and export): loading only, so everything that uses a trained model sits above it.
    # runlock: one training per run directory (issue 26); runs and training take it.
    (
        "storage",
        (
            "advnets.checkpoint",
            "advnets.runlock",
            "advnets.runs",
            "advnets.runlog",
            "advnets.data",
            "advnets.figures",
            "advnets.sampling",
            "advnets.generators",
            "advnets.pretrained",
        ),
    ),
    ("training", ("advnets.train", "advnets.monitor", "advnets.distributed")),
    (
        "uses",
        (
            "advnets.evaluate",  # the package's lazy face and evaluate.protocol
            "advnets.conditional",
            "advnets.infer",
            "advnets.semisup",
            "advnets.toy",
            "advnets.toy_figures",
            "advnets.theory",
        ),
    ),
    ("report", ("advnets.report",)),
    # `advnets explore`'s web app (issue 29): serves the toys, sampling, nearest and pretrained above it.
    ("explore", ("advnets.explore",)),
    ("cli", ("advnets.cli", "advnets.__main__")),
]

# Imports that break the direction today (none since the training redesign of issue 16). Not an
# xfail: any other violation fails, and an entry that is no longer needed fails too.
KNOWN: set[tuple[str, str]] = set()
KNOWN_CYCLES: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = ("advnets", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            hit = module == prefix if prefix == "advnets" else module == prefix or module.startswith(prefix + ".")
            if hit and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    assert best is not None, f"{module} has no layer: add it to LAYERS in tests/test_layers.py"
    return best


def imports_of(path: Path) -> set[str]:
    """The advnets modules ``path`` imports, anywhere in it (``from advnets.cli import train``
    counts as advnets.cli.train when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "advnets"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "advnets":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


def edges() -> set[tuple[str, str]]:
    return {(mod, dep) for mod, path in MODULES.items() for dep in imports_of(path) if dep != mod}


def owner(module: str) -> str:
    """The table entry a module is known by (advnets.train.loop -> advnets.train)."""
    return max(
        (p for _, prefixes in LAYERS for p in prefixes if module == p or module.startswith(p + ".")),
        key=len,
    )


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_every_layer_entry_names_a_module_that_exists():
    """A stale entry (a module renamed or removed) would silently place nothing."""
    stale = [p for _, prefixes in LAYERS for p in prefixes if p not in MODULES]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_no_module_imports_a_higher_layer():
    """errors/io <- config/nets/losses/metrics <- checkpoint/runs/data/figures/sampling <- train <-
    evaluate <- report <- cli, with the KNOWN exceptions only."""
    names = [name for name, _ in LAYERS]
    bad = sorted(
        f"{mod} ({names[layer_of(mod)]}) imports {dep} ({names[layer_of(dep)]})"
        for mod, dep in edges()
        if layer_of(dep) > layer_of(mod) and (owner(mod), owner(dep)) not in KNOWN
    )
    assert not bad, "imports against the layer order:\n  " + "\n  ".join(bad)


def test_known_exceptions_are_still_needed():
    """An allow-list entry whose import is gone must leave the list."""
    seen = {(owner(mod), owner(dep)) for mod, dep in edges() if layer_of(dep) > layer_of(mod)}
    assert KNOWN <= seen, f"no longer needed in KNOWN: {sorted(KNOWN - seen)}"


def test_no_import_cycles():
    """No two modules import each other, directly or through others (imports inside functions
    included: they only hide a cycle), except the KNOWN_CYCLES."""
    graph: dict[str, set[str]] = {}
    for mod, dep in edges():
        graph.setdefault(mod, set()).add(dep)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    cycles = sorted({tuple(sorted((a, b))) for a, b in edges() if reaches(b, a)})
    assert set(cycles) == KNOWN_CYCLES, f"import cycles: {cycles}"


def test_the_ground_floor_imports_nothing_else_of_advnets():
    for module in ("advnets.errors", "advnets.io"):
        assert imports_of(MODULES[module]) == set(), module


def test_the_walker_sees_imports_inside_functions(tmp_path):
    """The checker itself: an import hidden in a function body is found."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from advnets.cli import main\n    import advnets.report\n")
    assert imports_of(path) == {"advnets.cli", "advnets.report"}


def test_no_library_module_reads_the_command_line():
    """Only advnets.cli parses arguments: a library module taking an argparse.Namespace (or importing argparse)
    could not be called from a notebook the way the CLI calls it (issue 27)."""
    readers = sorted(
        name
        for name, path in MODULES.items()
        if not name.startswith("advnets.cli")
        and any(
            (isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and n.module == "argparse")
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    )
    assert not readers, f"library modules that import argparse: {readers}"


def test_the_architecture_page_names_every_module():
    """docs/architecture.md ("How the code is organised") names every module under src/advnets: a top-level one
    by its file name, one in a package by its stem in the package's row (the commands of cli/ excepted: one
    module per command, listed by the CLI reference)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1]: line for line in text.splitlines() if line.startswith("| `")}
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("cli", "assets") or "static" in rel.parts:
            continue
        if len(rel.parts) == 1:
            named = any(f"`{path.name}`" in cell for cell in rows)
        elif path.name == "__init__.py":
            named = any(f"`{rel.parts[0]}/`" in cell for cell in rows)
        else:
            row = next((line for cell, line in rows.items() if f"`{rel.parts[0]}/`" in cell), "")
            named = f"`{path.stem}`" in row or f"`{path.name}`" in row
        if not named:
            missing.append(str(rel))
    assert not missing
