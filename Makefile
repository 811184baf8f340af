# Two set-up commands (see README): `make demo` and `make test`.
# Both create the virtualenv themselves; constraints.txt pins torch to the
# CPU build these machines install from local disk.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow venv docs docs-serve dist-check clean

# Two stamps: the demo needs only advnets and its runtime dependencies (.runtime); the tests add the
# dev extras on top (.installed), so `make demo` installs no test tools.
$(BIN)/.runtime: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(BIN)/.installed: $(BIN)/.runtime
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# The paper's MNIST model (mnist.yaml of its reference code, github.com/goodfeli/adversarial)
# on the embedded 5k MNIST digits, with D at twice G's learning rate and instance noise: the paper's recipe alone
# collapses on about 1 seed in 5 at this budget (docs/stability.md, "When training collapses").
demo: $(BIN)/.runtime
	$(BIN)/advnets train --preset mnist --data embedded --epochs 100 --d-lr-scale 2 --instance-noise 0.1

# The default suite skips the tests marked slow (pyproject's addopts); test-slow runs only those.
test: $(BIN)/.installed
	$(BIN)/python -m pytest

test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -m slow

# The documentation site (mkdocs.yml): strict, so a broken link, a missing reference or any warning fails.
# The dev extra includes the docs extra (tests/test_docs_site.py builds the site too).
# NO_MKDOCS_2_WARNING: Material prints a banner about its successor on every build otherwise.
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Build the sdist and wheel, check them, install the wheel into a fresh venv outside the work tree and
# run advnets from there (scripts/dist_smoke.sh says what it runs).
$(BIN)/.dist-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,dist]'
	touch $@

dist-check: $(BIN)/.dist-installed
	PYTHON=$(BIN)/python scripts/dist_smoke.sh

clean:
	rm -rf $(VENV) .pytest_cache site
