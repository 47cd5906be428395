# Entry points. Each target sets up .venv from requirements.lock first (once), then calls the harness CLI.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HARNESS := $(PY) -m harness
PROFILE ?= quick
# The project's studies and those of the folders $HARNESS_EXPERIMENTS adds (':'-separated).
STUDY_FILES := $(wildcard experiments/*.yaml $(addsuffix /*.yaml,$(subst :, ,$(HARNESS_EXPERIMENTS))))
KNOWN_STUDIES := $(sort $(basename $(notdir $(filter-out %/defaults.yaml,$(STUDY_FILES)))))
STUDIES ?= $(KNOWN_STUDIES)
# Values given on the command line reach shell commands: each must be known words, nothing else (`T='x; rm y'`).
check = $(if $(or $(filter-out $(2),$(1)),$(if $(strip $(1)),,x)),$(error $(3)='$(1)': expected $(4) from: $(2)))
GOALS := $(or $(MAKECMDGOALS),reproduce)
ifneq ($(filter reproduce figures table check demo,$(GOALS)),)
$(if $(word 2,$(PROFILE)),$(error PROFILE='$(PROFILE)': one of full quick smoke))
$(call check,$(PROFILE),full quick smoke,PROFILE,one)
endif
ifneq ($(filter reproduce,$(GOALS)),)
$(call check,$(STUDIES),$(KNOWN_STUDIES),STUDIES,names)
endif
# strip_chars(text, chars): what is left of text once every listed character is removed
strip_chars = $(if $(2),$(call strip_chars,$(subst $(firstword $(2)),,$(1)),$(wordlist 2,$(words $(2)),$(2))),$(1))
SAFE_CHARS := a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 _ /
T_STUDY = $(firstword $(subst /, ,$(T)))
ifneq ($(filter table,$(GOALS)),)
$(if $(T),,$(error usage: make table T=<study> or T=<study>/<table or figure name, as its caption prints it>   (studies: $(KNOWN_STUDIES))))
$(if $(word 2,$(T)),$(error T='$(T)': one study or study/name from: $(KNOWN_STUDIES)))
$(if $(call strip_chars,$(T),$(SAFE_CHARS)),$(error T='$(T)': letters, digits, '_' and one '/' only))
$(call check,$(T_STUDY),$(KNOWN_STUDIES),T,one)
endif
# make demo [STUDY=<study>] [RUN=<run_id>] [PORT=<port>]: each checked before it reaches the shell.
HEX_CHARS := 0 1 2 3 4 5 6 7 8 9 a b c d e f
DIGITS := 0 1 2 3 4 5 6 7 8 9
PORT ?= 8000
ifneq ($(filter demo,$(GOALS)),)
$(if $(STUDY),$(if $(word 2,$(STUDY)),$(error STUDY='$(STUDY)': one study from: $(KNOWN_STUDIES))))
$(if $(STUDY),$(call check,$(STUDY),$(KNOWN_STUDIES),STUDY,one))
$(if $(RUN),$(if $(or $(word 2,$(RUN)),$(call strip_chars,$(RUN),$(HEX_CHARS))),$(error RUN='$(RUN)': a run_id, 16 hex digits (the name of a record under results/))))
$(if $(or $(word 2,$(PORT)),$(call strip_chars,$(PORT),$(DIGITS)),$(if $(strip $(PORT)),,x)),$(error PORT='$(PORT)': a port number, digits only (0 picks a free one)))
endif

.PHONY: reproduce figures table check demo test test-other-host bench gpu-check venv lock clean

## reproduce: run every study's missing runs (PROFILE=quick by default; STUDIES="a b" for some), then the PDF
## (the whole thesis of that profile: a study not run shows its records, or says how to produce them)
reproduce: venv
	@for s in $(STUDIES); do $(HARNESS) run $$s --profile $(PROFILE) || exit $$?; done
	$(HARNESS) render --profile $(PROFILE)

## figures: tables, figures and the PDF from results/ only (no training)
figures: venv
	$(HARNESS) render --profile $(PROFILE)

## table T=<study>[/<name>]: rerun the runs behind a study's tables (or behind the one table, figure or claim its
## caption names), compare with the records, and keep it all in verify/<study>[-<name>]/: report.md (every cell,
## recorded against rerun), results/ (the records with the reruns in place) and paper/build/main.pdf (the thesis
## built from the reruns). The exit status is the comparison's (0: the conclusions hold); results/ is not touched.
table: venv
	$(HARNESS) verify $(T) --profile $(PROFILE) --tolerance 1e-6 --keep verify/$(subst /,-,$(T))$(if $(filter-out quick,$(PROFILE)),-$(PROFILE))

## check: recompute every claim from the committed records (fails on a changed verdict, an edited or missing
## record, or a result number typed into the prose); then the full profile against its pre-registration (fails on
## a claim, its cells or seeds that moved since it was frozen, or a record made under another one); CI runs it
check: venv
	$(HARNESS) check --profile $(PROFILE)
	$(if $(filter full,$(PROFILE)),,$(HARNESS) check --profile full)

## demo: the interactive similarity page (seed 004's app) on a recorded run, served on localhost and offline;
## STUDY=<study> (default loss_epochs), RUN=<run_id> (default: the profile's demo run), PORT=<port> (default 8000)
demo: venv
	$(HARNESS) demo $(STUDY) --profile $(PROFILE) --port $(PORT)$(if $(RUN), --run $(RUN))

## test: unit and integration tests, including every study's smoke profile end to end
test: venv
	$(PY) -m pytest -q

## test-other-host: the verification and provenance tests again, as if on another machine (torch on another
## instruction set and thread count, another CPU name, time zone and umask: tests/conftest.py, --other-host);
## CI runs it after `make test`, so that no test passes only on the kind of machine it was written on
HOST_TESTS := tests/test_verification.py tests/test_train.py tests/test_store.py tests/test_resume.py \
	tests/test_render_items.py tests/test_claims.py tests/test_jobs.py tests/test_distributed.py \
	tests/test_cli_chains.py tests/test_concurrency.py
test-other-host: venv
	$(PY) -m pytest -q --other-host $(HOST_TESTS)

## gpu-check: before a full profile on a GPU (smoke profiles on CUDA, bf16, one MNIST-sized epoch, --jobs 1 vs 4,
## evaluation on the GPU against the CPU, peak memory); one table, and gpu-check.json. On a CPU: a small setting.
gpu-check: venv
	$(HARNESS) gpu-check --out gpu-check.json

## bench: the speed benchmarks (pytest-benchmark), ratios measured side by side in one run
bench: venv
	$(PY) -m pytest tests/bench --benchmark-only --benchmark-columns=min,median,mean,rounds -q -s

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

## lock: re-pin requirements.lock from the current .venv
lock: venv
	$(PY) -m pip freeze --exclude-editable | sed '/^harness/d' > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf paper/generated paper/build paper-*/ .pytest_cache
