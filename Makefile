# One entry point for people and CI. `make test` and `make demo` set everything up themselves.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup test demo bench docs regen clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Editable install builds the Cython extension in place (setup.py); tests then run both engines.
setup: $(BIN)/python
	./.ci/system-deps
	$(BIN)/pip install -q -e '.[test]'
	@# an editable install writes no bytecode; the generated tables import 10x faster from .pyc
	$(BIN)/python -m compileall -q exi_codec evse hal simulators >/dev/null
	$(BIN)/python -c "import exi_codec; print('exi_codec engine:', exi_codec.ENGINE)"

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/evse demo

bench: setup
	$(BIN)/python benchmarks/exi_bench.py

# The API reference, generated from the docstrings (never a hand-maintained copy).
docs: $(BIN)/python
	$(BIN)/pip install -q -e '.[docs]'
	$(BIN)/pdoc -o build/api evse hal
	@echo "API reference: build/api/index.html"

regen: $(BIN)/python
	$(BIN)/python -m tools.exigen --schemas ../shared/schemas --out exi_codec/schemas

clean:
	rm -rf build $(VENV) exi_codec/*.so exi_codec/_engine_c.c
