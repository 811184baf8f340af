"""Sizes (issue 27): no function in src/advnets over 60 lines (its docstring excluded), no module over 500.

A function's length is its signature plus its body without the docstring (decorators, and the blank lines
right after the docstring, are not counted); a nested function counts in its own right and inside its parent.
Functions are named by their qualified name in the module (``Trainer.__init__``). The allow-lists hold the
offenders that are being split now; an entry that no longer exceeds its limit fails too, so the lists shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import advnets

SRC = Path(advnets.__file__).resolve().parent

MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500

# Exceptions to the limits, each with its reason (none today: the last were split in issue 27).
LONG_FUNCTIONS: set[tuple[str, str]] = set()
LONG_MODULES: set[str] = set()


def has_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = node.body[0]
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def function_length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of ``node``'s signature and body, its docstring excluded."""
    assert node.end_lineno is not None
    if not has_docstring(node):
        return node.end_lineno - node.lineno + 1
    signature = node.body[0].lineno - node.lineno  # the def line(s) before the docstring
    if len(node.body) == 1:
        return signature
    return signature + node.end_lineno - node.body[1].lineno + 1


def functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function under ``tree`` with its qualified name (``Class.method``, ``outer.inner``)."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                found.append((name, node))
            found += functions(node, f"{name}.")
        else:
            found += functions(node, prefix)
    return found


def sources() -> dict[str, str]:
    return {p.relative_to(SRC).as_posix(): p.read_text(encoding="utf-8") for p in sorted(SRC.rglob("*.py"))}


def long_functions() -> dict[tuple[str, str], int]:
    return {
        (path, name): length
        for path, text in sources().items()
        for name, node in functions(ast.parse(text))
        if (length := function_length(node)) > MAX_FUNCTION_LINES
    }


def long_modules() -> dict[str, int]:
    return {path: n for path, text in sources().items() if (n := len(text.splitlines())) > MAX_MODULE_LINES}


def test_no_function_over_60_lines():
    bad = sorted(
        f"{path}: {name} ({n} lines)"
        for (path, name), n in long_functions().items()
        if (path, name) not in LONG_FUNCTIONS
    )
    assert not bad, f"functions over {MAX_FUNCTION_LINES} lines (docstring excluded): split them:\n  " + "\n  ".join(
        bad
    )


def test_no_module_over_500_lines():
    bad = sorted(f"{path} ({n} lines)" for path, n in long_modules().items() if path not in LONG_MODULES)
    assert not bad, f"modules over {MAX_MODULE_LINES} lines: split them by concern:\n  " + "\n  ".join(bad)


def test_the_allow_lists_only_hold_offenders():
    """An allow-listed function or module that is now short enough (or gone) must leave the list."""
    stale = sorted(map(str, LONG_FUNCTIONS - set(long_functions()))) + sorted(LONG_MODULES - set(long_modules()))
    assert not stale, f"no longer over the limit: remove from the allow-lists in tests/test_sizes.py: {stale}"


def test_the_measure_excludes_docstrings_and_names_methods():
    """The measure itself, on a made-up module: a 3-line docstring is not counted, the signature is."""
    text = (
        "class C:\n"
        "    def m(\n        self,\n    ) -> None:\n"
        '        """One.\n\n        Two.\n        """\n'
        "        x = 1\n        return x\n"
        "\n\ndef f():\n    def g():\n        pass\n    return g\n"
    )
    lengths = {name: function_length(node) for name, node in functions(ast.parse(text))}
    assert lengths == {"C.m": 5, "f": 4, "f.g": 2}
