# Two environments (see README): .venv = backend (torch, ML stack), .venv-blender = Blender side (bpy, numpy<2).
# The add-on supports Blender 4.2 LTS and later: .venv-blender-4.2 and -4.5 run the Blender-side tests on those
# (bpy 4.2.0 = the manifest's blender_version_min, 4.5.15 = the last 4.x LTS; see docs/addon.md).
PYTHON ?= python3
VENV := .venv
BVENV := .venv-blender
OLD_BLENDERS := 4.2 4.5
OLD_BVENVS := $(addprefix $(BVENV)-,$(OLD_BLENDERS))
DEMO := data/demo

.PHONY: setup demo test test-all lint clean ebsynth

setup: $(VENV)/.stamp $(BVENV)/.stamp $(addsuffix /.stamp,$(OLD_BVENVS)) ebsynth

# EbSynth, the external peer baseline: built from the public-domain sources beside the clone
# (../shared/third_party/ebsynth) into an ignored folder; eval finds it there (or via $Z2H_EBSYNTH / PATH).
EBSYNTH_SRC ?= ../shared/third_party/ebsynth
EBSYNTH_BIN := .cache/ebsynth/ebsynth

ebsynth: $(EBSYNTH_BIN)

$(EBSYNTH_BIN):
	@if [ -f "$(EBSYNTH_SRC)/build.sh" ]; then \
		echo "building ebsynth from $(EBSYNTH_SRC) (g++ + OpenMP, 1-2 min)"; \
		sh "$(EBSYNTH_SRC)/build.sh" "$(CURDIR)/$(EBSYNTH_BIN)"; \
	else \
		echo "ebsynth sources not found at $(EBSYNTH_SRC): the ebsynth methods are skipped."; \
		echo "  Build it from github.com/jamriska/ebsynth (README: 'EbSynth') and set Z2H_EBSYNTH."; \
	fi

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

# bpy 4.2 / 4.5 (extras blender42 / blender45 in pyproject.toml): ~1 GB and ~20 s each.
$(BVENV)-%/.stamp: pyproject.toml
	$(PYTHON) -m venv $(BVENV)-$*
	$(BVENV)-$*/bin/pip install -q --upgrade pip
	$(BVENV)-$*/bin/pip install -q -e ".[blender$(subst .,,$*),dev]"
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
	for v in $(OLD_BVENVS); do $$v/bin/pytest -q -m "not slow" tests/blender || exit 1; done
	$(VENV)/bin/pytest -q -m "not slow" tests --ignore=tests/blender

test-all: setup
	$(BVENV)/bin/pytest -q tests/blender
	for v in $(OLD_BVENVS); do $$v/bin/pytest -q tests/blender || exit 1; done
	$(VENV)/bin/pytest -q tests --ignore=tests/blender

lint:
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(BVENV) $(OLD_BVENVS) *.egg-info .cache/ebsynth
