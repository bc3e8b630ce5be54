# One entry point for set-up, the demo, tests and benchmarks.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# A small RHM (v=8, m=4, s=2, L=3; 16384 samples), a hierarchical CNN trained on
# its root, every layer probed against every level, layer metrics at 5 log-spaced
# checkpoints; ends with report.html and the paper-000 claims table.
demo: $(STAMP)
	$(BIN)/tmr generate configs/rhm.toml --out data/demo_rhm.h5 --overwrite
	rm -rf runs/demo_cnn
	$(BIN)/tmr train-and-probe configs/train_rhm_cnn.toml --data data/demo_rhm.h5 \
		--out runs/demo_cnn --threads 1
	$(BIN)/tmr report runs/demo_cnn
	@echo "heatmap: runs/demo_cnn/layer_level.png"

lint: $(STAMP)
	$(BIN)/ruff check generators tmr tests benchmarks
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) data runs .pytest_cache .mypy_cache .ruff_cache

# The RHM sample-complexity study (docs/studies/rhm_sample_complexity.md): CNN and MLP
# sweeps (local processes, or Slurm when sbatch is on the PATH; re-running resumes),
# then the collapse figure, fitted P*, MLP comparison and synonymic sensitivities in
# sweeps/rhm_pc_$(STUDY_SIZE)_analysis/. STUDY_SIZE=large is the GPU/cluster config.
STUDY_SIZE ?= small
STUDY_DIR := studies/rhm_sample_complexity
STUDY_OUT := sweeps/rhm_pc_$(STUDY_SIZE)

.PHONY: study-rhm
study-rhm: $(STAMP)
	$(BIN)/tmr sweep $(STUDY_DIR)/sweep_$(STUDY_SIZE).toml --out $(STUDY_OUT)_cnn
	$(BIN)/tmr sweep $(STUDY_DIR)/sweep_$(STUDY_SIZE)_mlp.toml --out $(STUDY_OUT)_mlp
	$(BIN)/tmr collect $(STUDY_OUT)_cnn
	$(BIN)/tmr collect $(STUDY_OUT)_mlp
	$(BIN)/python $(STUDY_DIR)/analyse.py $(STUDY_OUT)_cnn --mlp $(STUDY_OUT)_mlp \
		--out $(STUDY_OUT)_analysis
