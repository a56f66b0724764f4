# Two entry points: `make serve` (run the service on the embedded local store) and `make test`.
PY ?= python3
VENV := .venv
SAV := .venv-sav
# The dvc CLI for the dataset tests, in its own venv: its aiobotocore pins would move boto3/botocore.
DVC := .venv-dvc
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
# Debian's Chromium for the web UI tests: Playwright drives it (its own browser downloads are unreachable).
CHROMIUM := /usr/bin/chromium
HOST ?= 127.0.0.1
PORT ?= 8000
STORE ?= file://data

.PHONY: serve test test-quick setup

# The service alone needs only the runtime requirements; the tests add the clients and ML stacks.
$(RUNTIME): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME) requirements-dev.txt
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $(STAMP)

$(SAV)/.installed:
	test -x $(SAV)/bin/python || $(PY) -m venv $(SAV)
	$(SAV)/bin/pip install -q stac-api-validator==0.6.8 stac-validator==4.1.0 stac-check==1.14.0 \
	    stac-valid==4.2.2 pystac==1.15.2 pystac-client==0.9.1 jsonschema==4.26.0 \
	    referencing==0.37.0 requests==2.34.2 urllib3==2.8.0
	touch $(SAV)/.installed

$(DVC)/.installed:
	test -x $(DVC)/bin/python || $(PY) -m venv $(DVC)
	$(DVC)/bin/pip install -q "dvc[s3]==3.67.1"
	touch $(DVC)/.installed

$(CHROMIUM):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# MLflow's web UI, copied out of the pinned mlflow wheel (served at /mlflow/; the service never imports mlflow).
MLFLOW_UI := build/ui/mlflow/MLFLOW_VERSION
$(MLFLOW_UI): $(STAMP) scripts/build_mlflow_ui.py
	$(VENV)/bin/python scripts/build_mlflow_ui.py

setup: $(STAMP) $(SAV)/.installed $(DVC)/.installed $(CHROMIUM) $(MLFLOW_UI)

serve: $(RUNTIME)
	$(VENV)/bin/stacflow serve --host $(HOST) --port $(PORT) --store $(STORE)

test: setup
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

test-quick: setup
	$(VENV)/bin/python -m pytest -q -m "not slow" $(PYTEST_ARGS)
