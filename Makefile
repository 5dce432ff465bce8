# CMRAssist: `make serve` runs the MONAI Label server, `make test` runs the whole test suite.
# Both create or reuse .venv with the pinned stack first (scripts/setup_venv.sh, idempotent).

VENV    := .venv
PY      := $(VENV)/bin/python
HOST    ?= 127.0.0.1
PORT    ?= 8000
STUDIES ?=
CONF    ?=
DEMO_STUDIES := demo_studies
MODEL_DIR    ?= server/model
# CONF="network=attention_unet device=cpu" -> --conf network attention_unet --conf device cpu
CONF_ARGS := --conf model_dir $(abspath $(MODEL_DIR)) $(foreach kv,$(CONF),--conf $(firstword $(subst =, ,$(kv))) $(word 2,$(subst =, ,$(kv))))

export MONAI_LABEL_TRACKING_ENABLED := false
export PYTHONUNBUFFERED := 1
# monailabel's launcher runs `python` from PATH: make it the venv's.
export MONAILABEL_PYEXE := $(abspath $(VENV))/bin/python

.PHONY: venv serve test bench-latency clean

venv:
	@bash scripts/setup_venv.sh

serve: venv
ifeq ($(strip $(STUDIES)),)
	@$(VENV)/bin/cmrassist prepare-demo --studies $(DEMO_STUDIES) --model-dir $(MODEL_DIR)
	$(VENV)/bin/monailabel start_server --app server --studies $(DEMO_STUDIES) --host $(HOST) --port $(PORT) $(CONF_ARGS)
else
	$(VENV)/bin/monailabel start_server --app server --studies $(STUDIES) --host $(HOST) --port $(PORT) $(CONF_ARGS)
endif

test: venv
	@QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow or slow" $(PYTEST_ARGS)

clean:
	rm -rf $(DEMO_STUDIES) .pytest_cache
