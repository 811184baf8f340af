# Two set-up commands (see README): `make demo` and `make test`.
# Both create the virtualenv themselves; constraints.txt pins torch to the
# CPU build these machines install from local disk.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# The paper's MNIST model (PAPER.md §4) on the embedded 5k MNIST digits.
demo: $(BIN)/.installed
	$(BIN)/advnets train --preset mnist --data embedded --epochs 100

test: $(BIN)/.installed
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
