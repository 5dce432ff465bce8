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

export PYTHONUNBUFFERED := 1

.PHONY: venv system serve test lint clean

venv:
	@bash scripts/setup_venv.sh

serve: venv
ifeq ($(strip $(STUDIES)),)
	@$(VENV)/bin/cmrassist prepare-demo --studies $(DEMO_STUDIES) --model-dir $(MODEL_DIR)
	$(VENV)/bin/cmrassist serve --studies $(DEMO_STUDIES) --model-dir $(MODEL_DIR) --host $(HOST) --port $(PORT) --conf $(CONF)
else
	$(VENV)/bin/cmrassist serve --studies $(STUDIES) --model-dir $(MODEL_DIR) --host $(HOST) --port $(PORT) --conf $(CONF)
endif

# System packages the tests start themselves (Orthanc + DICOMweb, the PACS of the DICOM tests); idempotent.
system:
	@bash scripts/setup_system.sh

test: venv system lint
	@QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow or slow" $(PYTEST_ARGS)

lint: venv
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(DEMO_STUDIES) .pytest_cache
