# Two environments (see README): .venv = backend (torch, ML stack), .venv-blender = Blender side (bpy, numpy<2).
# The add-on supports Blender 4.2 LTS and later: .venv-blender-4.2 and -4.5 run the Blender-side tests on those
# (bpy 4.2.0 = the manifest's blender_version_min, 4.5.15 = the last 4.x LTS; see docs/addon.md).
PYTHON ?= python3
VENV := .venv
BVENV := .venv-blender
OLD_BLENDERS := 4.2 4.5
OLD_BVENVS := $(addprefix $(BVENV)-,$(OLD_BLENDERS))
DEMO := data/demo

.PHONY: setup demo test test-all lint clean ebsynth check-demo results results-demo results-bce \
	results-experiments results-perf

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

$(VENV)/.stamp: pyproject.toml constraints-ml.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# Pinned pair that lies on the local disk; installed first so nothing pulls another torch.
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -c constraints-ml.txt -e ".[ml,dev,ray]"
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

# CI: the README's demo table must be what `make demo` gives now (tolerance: docs/eval.md, `z2h report`).
check-demo: demo
	$(VENV)/bin/z2h report demo --check --demo $(DEMO)/results

# Every number in README.md and docs/ from the code as it is: `z2h report` rewrites the blocks between
# <!-- results:NAME --> markers from these result folders. Each part runs alone.
BCE := data/bce
BCE_RESULTS := data/bce-results
EXPERIMENTS := data/experiments
PERF_OUT := data/perf
# Every baseline but TV-L1 (the slowest), plus the z2h methods; BCE_EXTRA names the peers that need a binary
# or weights (`make setup` provides both; `make results-bce BCE_EXTRA=` leaves them out).
BCE_LIST := no-edit colormap colormap-lut flow-dis-direct flow-dis-direct-fb flow-dis-chained \
	flow-dis-chained-fb flow-farneback-direct flow-farneback-direct-fb flow-farneback-chained \
	flow-farneback-chained-fb z2h-zero z2h
BCE_LIST += $(shell grep -qs '"z2h-paper"' eval/methods.py && echo z2h-paper)  # the paper's preset, beside z2h
BCE_EXTRA ?= flow-raft-direct flow-raft-chained ebsynth ebsynth-temporal
empty :=
comma := ,
BCE_METHODS = $(subst $(empty) $(empty),$(comma),$(strip $(BCE_LIST) $(BCE_EXTRA)))
K_VIDEOS := twins_crossing,moving_background,rotate_360_monkey

results: results-demo results-bce results-experiments results-perf

results-demo: demo
	$(VENV)/bin/z2h report demo --demo $(DEMO)/results

results-bce: setup
	$(VENV)/bin/z2h eval run $(BCE) --methods $(BCE_METHODS) --out $(BCE_RESULTS) --jobs 2
	$(VENV)/bin/z2h report bce --bce $(BCE_RESULTS)

results-experiments: setup
	$(VENV)/bin/z2h experiment modes $(BCE) --out $(EXPERIMENTS)/modes --overwrite --progress none
	$(VENV)/bin/z2h experiment anchor-only $(BCE) --videos $(K_VIDEOS) --out $(EXPERIMENTS)/anchor-only \
		--overwrite --progress none
	$(VENV)/bin/z2h experiment k-sweep $(BCE) --videos $(K_VIDEOS) --out $(EXPERIMENTS)/k-sweep \
		--overwrite --progress none
	$(VENV)/bin/z2h experiment k-sweep $(BCE) --videos $(K_VIDEOS) --tau 0.2 --out $(EXPERIMENTS)/k-sweep-soft \
		--overwrite --progress none
	$(VENV)/bin/z2h report experiments --experiments $(EXPERIMENTS)

results-perf: setup
	mkdir -p $(PERF_OUT)
	for s in attention_speed zero_speed edit_speed hero_steps metrics_speed; do \
		$(VENV)/bin/python perf/$$s.py --md $(PERF_OUT)/$$s.md || exit 1; done
	$(VENV)/bin/z2h report perf --perf $(PERF_OUT)

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
