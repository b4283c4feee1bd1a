# The imaging center platform. Two commands set everything up on a fresh machine:
#   make run    start the whole platform on one machine (port 8080, DICOM 11112/11113, MLLP 2575)
#   make test   install everything and run every test
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SERVICES := $(sort $(wildcard services/*))
# Debian packages the tests and the platform use: real DICOM peers, OCR, a browser for UI tests.
SYSTEM_PACKAGES := dcmtk tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim chromium fonts-noto-cjk fonts-dejavu-core fonts-liberation
# A binary per package, to tell whether it is there.
SYSTEM_BINARIES := /usr/bin/findscu /usr/bin/tesseract /usr/share/tesseract-ocr/5/tessdata/chi_sim.traineddata /usr/bin/chromium /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf

include deploy/k8s/helm.mk

.PHONY: help venv system-deps run migrate test lint bench infra clean

help:
	@echo "make run      start the whole platform on one machine"
	@echo "make test     install what is needed and run every test"
	@echo "make migrate  apply database migrations of every service"
	@echo "make lint     ruff, and mypy on libs/common"
	@echo "make bench    run the benchmarks in tests/bench"
	@echo "make infra    install (apt) and start PostgreSQL, RabbitMQ and Redis"

$(STAMP): requirements.txt requirements-dev.txt libs/common/pyproject.toml $(wildcard services/*/pyproject.toml)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt \
		-e libs/common $(addprefix -e ,$(SERVICES))
	@touch $@

venv: $(STAMP)

# Installs missing Debian packages when run as root; otherwise names what is missing and fails.
system-deps:
	@missing=""; for f in $(SYSTEM_BINARIES); do [ -e $$f ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages: $(SYSTEM_PACKAGES)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
		else \
			echo "missing:$$missing"; echo "install as root: apt-get install $(SYSTEM_PACKAGES)"; exit 1; \
		fi; \
	fi

run: venv
	$(PY) -m imaging_common.allinone

migrate: venv
	$(PY) -m imaging_common.allinone migrate

test: venv system-deps $(HELM)
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check libs services tests
	$(VENV)/bin/mypy libs/common/imaging_common

bench: venv system-deps
	$(PY) -m pytest tests/bench -s -p no:cacheprovider

# PostgreSQL, RabbitMQ and Redis from Debian's packages, started without systemd.
infra:
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql rabbitmq-server redis-server >/dev/null; fi
	@pg_isready -q -h 127.0.0.1 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@(echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null || rabbitmq-server -detached
	@echo "PostgreSQL, Redis and RabbitMQ started (RabbitMQ may take a few seconds more)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
