# Two environments (see README): .venv = backend (torch, ML stack), .venv-blender = Blender side (bpy, numpy<2).
PYTHON ?= python3
VENV := .venv
BVENV := .venv-blender
DEMO := data/demo

.PHONY: setup demo test test-all lint clean

setup: $(VENV)/.stamp $(BVENV)/.stamp

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# Pinned pair that lies on the local disk; installed first so nothing pulls another torch.
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -e ".[ml,dev]"
	$(VENV)/bin/z2h weights fetch
	touch $@

$(BVENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(BVENV)
	$(BVENV)/bin/pip install -q --upgrade pip
	$(BVENV)/bin/pip install -q -e ".[blender,dev]"
	touch $@

# The main job on a small benchmark: build it, score the baselines and z2h, print where everything is.
demo: setup
	$(VENV)/bin/z2h bench build scenes/demo/*.toml --out $(DEMO)/bench --jobs 2 --resume
	$(VENV)/bin/z2h bench check $(DEMO)/bench
	$(VENV)/bin/z2h eval run $(DEMO)/bench --methods default --out $(DEMO)/results
	$(VENV)/bin/z2h eval table $(DEMO)/results --format md --out $(DEMO)/results/table.md
	$(VENV)/bin/z2h eval plot $(DEMO)/results
	@echo "Benchmark: $(DEMO)/bench   Table: $(DEMO)/results/table.md"

# Fast subset (CI). Blender-side tests run in .venv-blender, the rest in .venv.
test: setup
	$(BVENV)/bin/pytest -q -m "not slow" tests/blender
	$(VENV)/bin/pytest -q -m "not slow" tests --ignore=tests/blender

test-all: setup
	$(BVENV)/bin/pytest -q tests/blender
	$(VENV)/bin/pytest -q tests --ignore=tests/blender

lint:
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(BVENV) *.egg-info
