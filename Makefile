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
STRIP := /usr/bin/strip
HOST ?= 127.0.0.1
PORT ?= 8000
STORE ?= file://data

# The web UIs, built into build/ui/<name>/ (served by `stacflow serve`; `stacflow publish-ui` uploads
# them into the store for AWS). STAC Browser: the npm package pinned by ui/stac-browser/package-lock.json.
UI := build/ui
STAC_BROWSER := $(UI)/browser/index.html

.PHONY: serve test test-quick setup ui

# The service alone needs only the runtime requirements; the tests add the clients and ML stacks.
$(RUNTIME): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME) requirements-dev.txt requirements-geoparquet.txt
	$(VENV)/bin/pip install -q -r requirements-dev.txt -r requirements-geoparquet.txt
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

# binutils' strip: the geoparquet function's zip drops native libraries' debug sections (deploy/geoparquet_package.py).
$(STRIP):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q binutils

$(STAC_BROWSER): ui/stac-browser/package.json ui/stac-browser/package-lock.json ui/stac-browser/config.js \
		ui/stac-browser/build.sh
	sh ui/stac-browser/build.sh $(UI)/browser

# MLflow's web UI, copied out of the pinned mlflow wheel (served at /mlflow/; the service never imports mlflow).
MLFLOW_UI := $(UI)/mlflow/MLFLOW_VERSION
$(MLFLOW_UI): $(RUNTIME) scripts/build_mlflow_ui.py
	$(VENV)/bin/python scripts/build_mlflow_ui.py

ui: $(STAC_BROWSER) $(MLFLOW_UI)

setup: $(STAMP) $(SAV)/.installed $(DVC)/.installed $(CHROMIUM) $(STRIP) ui

serve: $(RUNTIME) ui
	$(VENV)/bin/stacflow serve --host $(HOST) --port $(PORT) --store $(STORE)

test: setup
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

test-quick: setup
	$(VENV)/bin/python -m pytest -q -m "not slow" $(PYTEST_ARGS)
