"""Docs that cannot rot (issue 30): every shell and Python block of README.md and docs/tutorials/*.md runs, and
the numbers the README states for the shipped models are the ones the code and the records give.

How a document is run (the slow tests, one per document): its ```sh / ```bash / ```console and ```python blocks
run in order, in one fresh temporary directory (the reader's clone: `runs/` and every file a block writes are
there for the next block), shell blocks with `bash -e`, Python blocks as a script with this interpreter; the
data directory is the test session's (conftest's $ADVNETS_DATA), never ~/.cache/advnets. A block must exit 0.

Where a block trains for minutes, it runs at a reduced size, said in the document itself by markers on the lines
right before the block (HTML comments: GitHub and MkDocs do not show them):

    <!-- test: replace "--epochs 20" with "--epochs 1" -->   the test runs the block with this text replaced
    <!-- test: expect "211.6 ± 2.3" -->                      the block's output must contain this text

A replace whose text is not in its block fails (`test_every_marker_applies_to_its_block`), so a marker cannot go
stale. SUBSTITUTIONS below apply to every block; NOT_RUN lists the few commands that are not run, and why;
PREPARED the files the docs assume the reader already has, which the test makes.

The shipped models' stated Parzen numbers need the full MNIST test set, which tests never read: the README's
numbers are checked against the package's registry (`advnets.pretrained.REGISTRY`, the numbers
`evaluate --pretrained` prints as "stated" and reproduces to +0.000 on full MNIST), their FD, KID, recall and
MNIST score against the table in docs/table1.md and benchmarks/RESULTS.md (where they were measured), and the
number the quick start prints on the embedded digits against the command's output (`expect` markers).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "tutorials").glob("*.md"))]
VENV_BIN = Path(sys.executable).parent
LANGS = {"sh": "shell", "bash": "shell", "console": "shell", "python": "python"}
MARKER = re.compile(r"^<!-- test: (.*) -->$")
REPLACE = re.compile(r'^replace "([^"]+)" with "([^"]*)"$')
EXPECT = re.compile(r'^expect "([^"]+)"$')

#: Applied to every command, in this order: (what the docs say, what the test runs, why).
SUBSTITUTIONS = [
    (".venv/bin/", f"{VENV_BIN}/", "the clone's virtualenv is the one running these tests"),
    # `make demo` is the Makefile's own recipe, read from the Makefile, at 1 epoch instead of 100 (minutes).
    ("make demo", "<the Makefile's demo recipe with --epochs 1>", "the demo trains 100 epochs: 2-40 minutes"),
]

#: Commands not run, by a pattern matched against each command: (pattern, reason). Keep this list short.
NOT_RUN = [
    (r"^make test\b", "the test suite itself (it would run this test again)"),
    (r"advnets data fetch", "downloads from the internet; tests are offline (tests/test_fetch.py: a local server)"),
    (r"^srun |scontrol requeue", "a SLURM job script's commands: needs SLURM and full MNIST"),
    (r"^torchrun --nnodes", "several machines and a rendezvous endpoint (one machine: the `--nproc 2` block)"),
]

#: Files the docs assume the reader has: (path in the run directory, what the test puts there).
PREPARED = {"my-images": "300 PNG images of digits, 28x28 grey (README's quick start: 'a folder of your images')"}


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str  # "shell" or "python"
    text: str
    replaces: list[tuple[str, str]] = field(default_factory=list)
    expects: list[str] = field(default_factory=list)

    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks_of(doc: Path) -> list[Block]:
    """The runnable fenced blocks of ``doc`` with the markers on the lines right before each."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if fence.group(1) in LANGS:
            block = Block(doc, i + 1, LANGS[fence.group(1)], "\n".join(lines[i + 1 : end]) + "\n")
            if fence.group(1) == "console":  # only the prompts are commands
                block.text = "".join(s[2:] + "\n" for s in lines[i + 1 : end] if s.startswith("$ "))
            k = i - 1
            while k >= 0 and MARKER.match(lines[k]):
                _apply_marker(block, MARKER.match(lines[k]).group(1), f"{doc.name}:{k + 1}")
                k -= 1
            found.append(block)
        i = end + 1
    return found


def _apply_marker(block: Block, body: str, where: str) -> None:
    if m := REPLACE.match(body):
        block.replaces.insert(0, (m.group(1), m.group(2)))
    elif m := EXPECT.match(body):
        block.expects.insert(0, m.group(1))
    else:
        raise AssertionError(f'{where}: unknown marker {body!r} (replace "A" with "B" | expect "TEXT")')


def demo_recipe() -> str:
    """The Makefile's `demo` command, with the virtualenv's path and 1 epoch instead of the demo's 100."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n\t(.+)$", text, re.M)
    assert recipe, "the Makefile has no demo target with a one-line recipe"
    command = recipe.group(1).replace("$(BIN)/", f"{VENV_BIN}/")
    assert "--epochs 100" in command, command
    return command.replace("--epochs 100", "--epochs 1")


def commands(text: str) -> list[str]:
    """Shell text as commands: a line with its backslash continuations."""
    out, current = [], ""
    for line in text.splitlines():
        current += line + "\n"
        if not line.endswith("\\"):
            out.append(current)
            current = ""
    return out + ([current] if current else [])


def not_run_reason(command: str) -> str | None:
    return next((reason for pattern, reason in NOT_RUN if re.search(pattern, command.strip())), None)


def runnable(block: Block) -> str:
    """What the test runs for ``block``: markers, SUBSTITUTIONS and NOT_RUN applied."""
    text = block.text
    for old, new in block.replaces:
        text = text.replace(old, new)
    if block.lang == "python":
        return text
    kept = []
    for command in commands(text):
        if not_run_reason(command):
            continue
        command = command.replace(".venv/bin/", f"{VENV_BIN}/")
        kept.append(re.sub(r"^make demo\b", demo_recipe(), command))
    return "".join(kept)


def prepare(where: Path) -> None:
    """PREPARED: a folder of images (the 8x8 digits scaled to 28x28) for the README's `folder:my-images`."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = where / "my-images"
    folder.mkdir()
    for i, image in enumerate(load_digits().images[:300]):
        Image.fromarray((image * 255 / 16).astype("uint8")).resize((28, 28)).save(folder / f"{i:03d}.png")


def run_block(block: Block, where: Path) -> str:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    code = runnable(block)
    if block.lang == "python":
        script = where / f"block-{block.doc.stem}-{block.line}.py"
        script.write_text(code, encoding="utf-8")
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    done = subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=1200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block.where()} exited {done.returncode}:\n{code}\n{output[-3000:]}"
    for text in block.expects:
        assert text in output, f"{block.where()}: expected {text!r} in its output:\n{output[-3000:]}"
    return output


# ---------------------------------------------------------------------------- every block, at reduced size


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_block_of_the_document_runs(doc, tmp_path):
    prepare(tmp_path)
    blocks = blocks_of(doc)
    assert blocks, f"{doc.name} has no runnable block"
    for block in blocks:
        run_block(block, tmp_path)


# ---------------------------------------------------------------------------- the docs' structure (fast)


def test_the_tested_documents_are_the_readme_and_the_five_tutorials():
    names = {d.relative_to(ROOT).as_posix() for d in DOCS}
    tutorials = {"first-gan", "reproduce-table1", "own-images", "evaluate-samples", "resume-and-scale"}
    assert names == {"README.md", *(f"docs/tutorials/{t}.md" for t in tutorials)}


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_marker_applies_to_its_block(doc):
    for block in blocks_of(doc):
        for old, _ in block.replaces:
            assert old in block.text, f"{block.where()}: marker replaces {old!r}, which the block no longer holds"
        assert runnable(block).strip() or all(not_run_reason(c) for c in commands(block.text)), block.where()


def test_a_marker_that_is_not_understood_fails(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text('<!-- test: run "it" -->\n```sh\necho hi\n```\n', encoding="utf-8")
    with pytest.raises(AssertionError, match="unknown marker"):
        blocks_of(doc)


def test_markers_and_not_run_reach_the_command_the_test_runs(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        '<!-- test: replace "--epochs 20" with "--epochs 1" -->\n<!-- test: expect "done" -->\n'
        "```sh\n.venv/bin/advnets train --epochs 20\nmake test\nmake demo\n```\n\n```python\nprint(1)\n```\n"
        "```text\nnot run\n```\n",
        encoding="utf-8",
    )
    shell, python = blocks_of(doc)
    assert shell.expects == ["done"] and python.lang == "python" and python.replaces == []
    text = runnable(shell)
    assert f"{VENV_BIN}/advnets train --epochs 1\n" in text and "make test" not in text
    assert f"{VENV_BIN}/advnets train --preset mnist --data embedded --epochs 1 " in text  # the Makefile's demo


def test_every_not_run_entry_still_matches_a_documented_command():
    documented = [c for d in DOCS for b in blocks_of(d) if b.lang == "shell" for c in commands(b.text)]
    for pattern, reason in NOT_RUN:
        assert any(re.search(pattern, c.strip()) for c in documented), f"stale NOT_RUN entry {pattern!r} ({reason})"


def test_every_document_has_runnable_blocks_and_no_unknown_fences():
    for doc in DOCS:
        fences = re.findall(r"^```(\w*)\s*$", doc.read_text(encoding="utf-8"), re.M)
        opening = fences[::2]  # fences alternate: opening, closing
        assert set(opening) <= {*LANGS, "text"}, f"{doc.name}: a block in {set(opening) - {*LANGS, 'text'}}"
        assert any(lang in LANGS for lang in opening), doc.name


# ---------------------------------------------------------------------------- the README's numbers


def _results_table() -> dict[str, list[str]]:
    """The README's results table: {first cell: the other cells}."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Results.*?\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()]
    return {r[0]: r[1:] for r in rows if len(r) > 2 and not r[0].startswith("---")}


def _row(table: dict[str, list[str]], start: str) -> list[str]:
    (cells,) = [v for k, v in table.items() if k.startswith(start)]
    return cells


def test_the_readme_states_the_shipped_models_parzen_numbers_of_the_registry():
    from advnets.evaluate.protocol import PAPER_TABLE1
    from advnets.pretrained import REGISTRY

    table = _results_table()
    for name in ("mnist-paper-1151", "mnist-paper-annealed", "mnist-paper"):
        entry = REGISTRY[name]
        stated = f"{entry.parzen_ll:.1f} ± {entry.parzen_se:.1f}"
        assert _row(table, f"`{name}`")[0] == stated, name
        for doc in (ROOT / "docs" / "tutorials" / "reproduce-table1.md", ROOT / "docs" / "table1.md"):
            assert stated in doc.read_text(encoding="utf-8"), f"{doc.name} does not state {name}'s {stated}"
    mean, se = PAPER_TABLE1["MNIST"]
    assert _row(table, "Adversarial nets (the paper)")[0] == f"{mean:.0f} ± {se:.0f}"


def _recorded(number: str, text: str) -> bool:
    """``number`` (e.g. "8.67") is in ``text``, perhaps with more digits (8.669)."""
    places = len(number.split(".")[1]) if "." in number else 0
    return any(round(float(x), places) == float(number) for x in re.findall(r"(?<![\d.])\d+\.\d+", text))


def test_the_readme_feature_metrics_are_those_measured_in_table1_and_results():
    """FD, KID, recall and MNIST score of the README's rows are the investigation's table (docs/table1.md), whose
    numbers were measured on full MNIST and recorded in benchmarks/RESULTS.md."""
    table = _results_table()
    investigation = (ROOT / "docs" / "table1.md").read_text(encoding="utf-8")
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    rows = {
        "`mnist-paper-1151`": r"\| \(b\) `mnist-paper-1151`[^|]*\|(.*)\|",
        "`mnist-paper-annealed`": r"\| \(b\) `mnist-paper-annealed`[^|]*\|(.*)\|",
        "`mnist-paper`": r"\| \(b\) `mnist-paper` [^|]*\|(.*)\|",
        "real training images": r"\| \(a\) real training images[^|]*\|(.*)\|",
    }
    for start, pattern in rows.items():
        cells = [c.strip() for c in re.search(pattern, investigation).group(1).split("|")]
        fd, kid, _, recall, _, _, parzen, score = cells
        assert _row(table, start) == [parzen, fd, kid.split(" ± ")[0], recall, score], start
        for number in (fd, recall, score):
            assert _recorded(number, results), f"{start}: {number} is not in benchmarks/RESULTS.md"


def test_the_quick_start_number_on_the_embedded_digits_is_what_evaluate_prints(tmp_path):
    """The README's quick start says what `evaluate --pretrained mnist-paper-1151 --data embedded` prints."""
    from conftest import cli_in_process

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"On the embedded subset it prints\s+([0-9.]+ ± [0-9.]+) nats", readme).group(1)
    (block,) = [b for b in blocks_of(ROOT / "README.md") if "--pretrained mnist-paper-1151 --data" in b.text]
    assert any(stated in e for e in block.expects), "the quick start's expect marker and its text differ"
    code, out, err = cli_in_process("evaluate", "--pretrained", "mnist-paper-1151", "--data", "embedded",
                                    "--no-progress")  # fmt: skip
    assert code == 0, err
    assert re.search(rf"mnist-paper-1151\s+{re.escape(stated)}\s", out), out


# ---------------------------------------------------------------------------- the tutorial notebook

NOTEBOOK = ROOT / "docs" / "tutorials" / "reproduce-table1.ipynb"


@pytest.mark.slow
def test_the_tutorial_notebook_runs_and_reproduces_the_shipped_models_numbers(tmp_path):
    """docs/tutorials/reproduce-table1.ipynb in a real kernel (nbclient, ipykernel), on the embedded digits: every
    cell runs, the protocol prints what `evaluate --pretrained` prints (the README's quick start) beside the
    registry's stated number, and Figures 2 and 3 are drawn."""
    import nbformat
    from nbclient import NotebookClient

    from advnets.pretrained import REGISTRY

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"
    )
    entry = REGISTRY["mnist-paper-annealed"]
    assert f"stated: {entry.parzen_ll:.1f} ± {entry.parzen_se:.1f}" in text
    assert re.search(r"mnist-paper-annealed\s+215\.3 ± 9\.9 ", text), text  # as the README's quick start says
    # The memorisation check draws with Figure 2's seed: on the embedded digits its ratio is 1.00.
    assert "dataset embedded-mnist (stated: mnist)" in text and "ratio 1.00" in text
    pictures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2, "Figures 2 and 3"


# ---------------------------------------------------------------------------- links


def _anchor(heading: str) -> str:
    """GitHub's and MkDocs' id of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize(
    "page",
    [*DOCS, ROOT / "docs" / "index.md", ROOT / "docs" / "table1.md", ROOT / "docs" / "architecture.md"],
    ids=lambda p: p.name,
)
def test_every_relative_link_of_the_front_door_and_the_tutorials_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{page.name}: no heading #{anchor} in {path}"


# ---------------------------------------------------------------------------- the README's test counts


def _collected(*marker: str) -> int:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *marker]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    return int(re.search(r"^(\d+)/\d+ tests collected", out, re.M).group(1))


def test_the_readme_test_counts_are_within_a_tenth_of_the_suite():
    """The README quotes the suite's size; tests come and go, so it must stay within 10 % (then update it)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    default = int(re.search(r"runs the default suite \(([\d,]+) tests", text).group(1).replace(",", ""))
    slow = int(re.search(r"runs the ([\d,]+) marked slow", text).group(1).replace(",", ""))
    for stated, collected in ((default, _collected()), (slow, _collected("-m", "slow"))):
        assert abs(collected - stated) <= stated / 10, f"the README says {stated} tests; pytest collects {collected}"
