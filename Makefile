# Two entry points on a fresh machine: `make demo` and `make test` (each creates .venv first).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN    ?= runs/demo

TOY    ?= runs/toy

.PHONY: demo toy test test-all docs bench gpu-check gpu-wheels install clean

install: $(STAMP)

# pip's output goes to a log (this machine's local package mirrors print many harmless
# warnings); it is shown when the install fails.  The last step compiles librosa's numba
# kernels once, into their on-disk cache, so no run pays the ~16 s JIT again.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]' > $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	$(PY) -c "import numpy as np, avalign.core as c; c.audio_peaks(np.zeros(4096, dtype=np.float32), 22050)"
	touch $(STAMP)

# The main job on the built-in default: the synthetic dataset (made on first use), the shipped toy
# model (tempotokens/toy_model), every method; then the report (tables and plots).  Rerunning
# resumes and redoes nothing.
demo: $(STAMP)
	$(PY) -m benchmarks.run --dataset synthetic --out $(RUN)
	$(PY) -m reports $(RUN) --out $(RUN)/report

# Rebuild the toy model from its recipe into $(TOY)/model (never over the shipped copy; resumes
# where a killed run stopped).  Installing it as the shipped model is a separate step:
#   $(PY) -m tempotokens toy $(TOY) --install
toy: $(STAMP)
	$(PY) -m tempotokens toy $(TOY)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

# The docs site (mkdocs + material + mkdocstrings, pinned in the docs extra): strict, offline.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "docs: build/site/index.html"

bench: $(STAMP)
	mkdir -p runs/bench
	$(PY) -m pytest benchmarks/suites --benchmark-only --benchmark-json=runs/bench/benchmarks.json -q -s

# The GPU check (benchmarks/gpu_check.py). Here, without a GPU, its dry run: tiny sizes on the CPU,
# the same code path and list.  On the GPU machine it runs on that machine's Python (README).
gpu-check: $(STAMP)
	$(PY) -m benchmarks.gpu_check --out runs/gpu-check --budget-s 420 --dry-run

# The wheels the GPU machine lacks (benchmarks.gpu_check.GPU_WHEELS), for cp312, into .whl/ (ignored).
gpu-wheels: $(STAMP)
	rm -rf .whl   # one version of each: two stop the install there
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_17_x86_64 -d .whl \
		$$($(PY) -c "from benchmarks.gpu_check import GPU_WHEELS; print(*GPU_WHEELS)")
	du -sh .whl

clean:
	rm -rf $(VENV) runs build .pytest_cache .benchmarks
