"""Run every benchmark and gather the tables into benchmarks/RESULTS.md (issue 7).

Runs, each in its own process, one after the other:

* benchmarks/parzen.py: the Parzen-window protocol of Table 1 (issue 3);
* benchmarks/train_throughput.py: training throughput, alternating and simultaneous updates, against the plain
  PyTorch loop and the floor (issue 7);
* benchmarks/train_throughput.py --sampling-only: images/s of 10,000 samples;

and writes each table into its own section of the output file, between ``<!-- run_all:begin KEY -->`` and
``<!-- run_all:end KEY -->`` markers, plus a section with the machine, versions, thread count, load and date.
Sections are replaced in place; the rest of the file is kept (a section that an older script wrote under the
same heading without markers is replaced whole). Run it on a quiet machine: the tables say the load average.

Usage: python benchmarks/run_all.py [--output benchmarks/RESULTS.md] [--quick] [--threads N] [--device cpu]
       [--only parzen,training,sampling]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = {  # key: heading
    "machine": "## Machine and versions (benchmarks/run_all.py)",
    "parzen": "## Parzen-window evaluation (issue 3)",
    "training": "## Training throughput (issue 7)",
    "sampling": "## Sampling throughput (issue 7)",
}


def markers(key: str) -> tuple[str, str]:
    return f"<!-- run_all:begin {key} -->", f"<!-- run_all:end {key} -->"


def put_section(text: str, key: str, body: str, first: bool = False) -> str:
    """``text`` with section ``key`` holding ``body``: between its markers if present, else replacing a
    same-headed section without markers (up to the next '## ' heading), else added (after the title when
    ``first``, else at the end)."""
    heading = SECTIONS[key]
    begin, end = markers(key)
    body = body.strip("\n")
    i, j = text.find(begin), text.find(end)
    if i >= 0 and j > i:
        return text[: i + len(begin)] + "\n" + body + "\n" + text[j:]
    block = f"{heading}\n\n{begin}\n{body}\n{end}\n"
    start = text.find(heading + "\n")
    if start >= 0:
        nxt = text.find("\n## ", start + len(heading))
        rest = text[nxt + 1 :] if nxt >= 0 else ""
        return text[:start] + block + ("\n" + rest if rest else "")
    if first and text.startswith("# "):
        title_end = text.find("\n") + 1 or len(text)
        rest = text[title_end:].lstrip("\n")
        return text[:title_end] + "\n" + block + ("\n" + rest if rest else "")
    return text.rstrip("\n") + "\n\n" + block


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, keeping the file's permissions (or the umask's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(cmd: list[str]) -> str:
    """Run a benchmark, echo its progress (stderr) and return its table (stdout)."""
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    if out.returncode:
        raise SystemExit(f"{cmd[1]} failed with exit code {out.returncode}")
    print(f"  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return out.stdout


def machine_section(threads: int, load0: tuple[float, ...], load1: tuple[float, ...], elapsed: float) -> str:
    import numpy
    import scipy
    import sklearn
    import torch

    sys.path.insert(0, str(HERE))
    from machine import cpu_model

    lines = [
        f"- Date: {datetime.datetime.now().isoformat(timespec='minutes')}; all tables below from one "
        f"`python benchmarks/run_all.py {' '.join(sys.argv[1:])}` ({elapsed / 60:.0f} min).",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores; torch threads {threads}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.",
        f"- GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}.",
        f"- Load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in load0)} at the start, "
        f"{', '.join(f'{x:.1f}' for x in load1)} at the end.",
        f"- Python {platform.python_version()} ({platform.platform()}), torch {torch.__version__}, "
        f"numpy {numpy.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", type=Path, default=HERE / "RESULTS.md", help="the results file to update")
    ap.add_argument("--quick", action="store_true", help="pass --quick to each benchmark")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the training benchmarks")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="for the training benchmarks")
    ap.add_argument("--only", default="parzen,training,sampling", help="comma-separated sections to run")
    args = ap.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {', '.join(unknown)}")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    quick = ["--quick"] if args.quick else []
    common = [*quick, "--device", args.device] + (["--threads", str(args.threads)] if args.threads else [])
    py = sys.executable
    load0, t0 = os.getloadavg(), time.perf_counter()
    bodies = {}
    if "parzen" in only:
        bodies["parzen"] = run([py, str(HERE / "parzen.py"), *quick])
    if "training" in only:
        bodies["training"] = run([py, str(HERE / "train_throughput.py"), "--update", "both", "--no-sampling", *common])
    if "sampling" in only:
        bodies["sampling"] = run([py, str(HERE / "train_throughput.py"), "--sampling-only", *common])
    bodies["machine"] = machine_section(threads, load0, os.getloadavg(), time.perf_counter() - t0)

    source = args.output if args.output.exists() else HERE / "RESULTS.md"
    text = source.read_text() if source.exists() else "# Benchmark results\n"
    for key in SECTIONS:
        if key in bodies:
            text = put_section(text, key, bodies[key], first=key == "machine")
    write_atomically(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
