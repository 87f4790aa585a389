# medmm developer commands. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.medmm-installed
RUN    ?= runs/demo
# pytest workers: 2 cores on CI; override with `make test PYTEST_WORKERS=0` to run serially
PYTEST_WORKERS ?= 2

.PHONY: setup demo test bench lint schemas clean constraints

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/medmm demo --out $(RUN)

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check medmm tests bench
	$(VENV)/bin/ruff format --check medmm tests bench
	$(VENV)/bin/mypy

schemas: setup
	$(PY) -m medmm.schemas

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache

# Re-pin after changing dependencies (then commit constraints.txt).
constraints: setup
	@(echo "# Pinned versions that resolve together on Python 3.11 (numpy<2 for scispaCy). Regenerate: make constraints"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^medmm' | sed -E 's/^torch==([0-9.]+)\+cpu/torch==\1/') > constraints.txt
