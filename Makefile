# furet — the two commands of the README are `make demo` and `make test`; both run
# `make deps` first, which installs what is missing and is quick when all is there.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
BIN         := $(VENV)/bin
PYTHON      ?= python3
VENV_STAMP  := $(VENV)/.furet-deps
# Podman runtime settings that work on these machines (runc, cgroupfs, ulimits).
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export ANSIBLE_CONFIG  := $(CURDIR)/ansible.cfg
export PATH            := $(CURDIR)/$(BIN):$(PATH)
export FURET_HOME      := $(CURDIR)

.PHONY: help deps apt-deps venv cassandra-dist sstable-helper lab-image lab-up lab-down lab-status demo test \
        lint unit bench soak molecule lock clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

deps: apt-deps venv cassandra-dist sstable-helper ## Install everything furet needs (idempotent)

apt-deps: ## Debian packages of lab/apt-packages.txt
	@bash lab/install-apt-deps.sh

venv: $(VENV_STAMP) ## The Python venv .venv with pinned tools

$(VENV_STAMP): requirements-dev.txt constraints.txt pyproject.toml
	@echo "venv: installing pinned packages into $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

cassandra-dist: ## Cassandra 5.0 from Maven Central into .cache/cassandra
	@bash packaging/cassandra/build.sh

sstable-helper: cassandra-dist ## furet's SSTable helper (cassandra.bulk_load: SSTABLE) into .cache/sstable
	@bash packaging/sstable/build.sh

lab-image: deps ## The lab base image (debootstrap; rebuilt only when lab/image/ changes)
	@$(BIN)/furet lab image

lab-up: deps ## Start the lab hosts (builds the image when its recipe changed)
	@$(BIN)/furet lab up

lab-down: ## Remove the lab's containers and network
	@$(BIN)/furet lab down

lab-status: ## One line per lab host
	@$(BIN)/furet lab status

DEMO_QUOTES ?= 20000
demo: lab-up ## The main job on the lab: provision every host, a migration rehearsal, backups, the cutover
	@$(BIN)/ansible-playbook playbooks/site.yml
	@$(BIN)/fab rehearsal --quotes $(DEMO_QUOTES)
	@$(BIN)/fab unfreeze
	@$(BIN)/ansible-playbook playbooks/backup.yml
	@$(BIN)/ansible-playbook playbooks/restore_test.yml
	@$(BIN)/fab cutover run
	@$(BIN)/furet hosts

BENCH_QUOTES ?= 1000000
BENCH_LINES  ?= 1000000
# Other sizes of the growth table and chart (make bench BENCH_GROWTH=100000,5000000: the 5 M
# point, ~1 h more)
BENCH_GROWTH ?= 100000
# More options of python -m bench.run (BENCH_OPTS=--skip-baselines: furet's measures only)
BENCH_OPTS   ?=
bench: lab-up ## Benchmarks on the lab: furet vs mysqldump|mysql, mydumper, dsbulk, pt-table-sync
	@bash lab/install-apt-deps.sh bench/apt-packages.txt
	@FURET_BENCH=1 $(BIN)/pytest -q -p no:cacheprovider \
		tests/integration/test_server_literals.py -k measure
	@$(BIN)/ansible-playbook playbooks/site.yml > .cache/bench-site.log || \
		{ tail -40 .cache/bench-site.log; exit 1; }
	@$(BIN)/python -m bench.run --quotes $(BENCH_QUOTES) --lines $(BENCH_LINES) \
		--growth "$(BENCH_GROWTH)" $(BENCH_OPTS)

SOAK_TRIALS      ?= 20
SOAK_KILL_POINTS ?= 50
soak: deps ## Long trials: Galera recoveries and a power loss, Cassandra's rolling restart, the Galera and Cassandra upgrades, 10.11 to 11.8 by a new cluster and the rolling OS update under load (lab), round kill points, molecule
	@FURET_RECOVERY_TRIALS=$(SOAK_TRIALS) FURET_KILL_POINTS=$(SOAK_KILL_POINTS) FURET_POWER_LOSS=1 \
		$(BIN)/pytest -v -p no:cacheprovider tests/lab/test_galera_faults.py \
		tests/lab/test_cassandra_faults.py tests/lab/test_cassandra_upgrade.py tests/lab/test_galera_upgrade.py \
		tests/lab/test_rolling_os_update.py tests/lab/test_galera_next.py \
		tests/integration/test_round_kill_points.py tests/lab/test_molecule_scenarios.py

lint: venv ## ruff, yamllint, ansible-lint (production profile), mypy
	@$(BIN)/ruff check migration tests bench fabfile.py roles/etl_runner/files
	@$(BIN)/yamllint -s .
	@$(BIN)/ansible-lint -q
	@$(BIN)/mypy migration

unit: venv ## Unit tests only (no lab, no servers; on both cores)
	@$(BIN)/pytest -q -n 2 tests/unit

# The unit tests run on both cores (pytest-xdist: most of their time is ansible-playbook
# processes); the servers of the integration tests and the lab are one per machine.
test: deps lint ## Everything but molecule and the long trials: lint, unit, integration, lab
	@$(BIN)/pytest -v -n 2 --durations=15 -m "not molecule and not soak" tests/unit
	@$(BIN)/pytest -v --durations=25 -m "not molecule and not soak" tests/integration tests/lab

molecule: deps ## The roles' molecule scenarios (create, converge, idempotence, verify, destroy)
	@$(BIN)/pytest -v -p no:cacheprovider -m molecule tests/lab/test_molecule_scenarios.py

lock: ## Re-pin the transitive Python dependencies (constraints.txt)
	@$(BIN)/pip freeze --exclude-editable > constraints.txt

clean: lab-down ## Remove the lab, the venv and the caches (the lab image stays)
	rm -rf $(VENV) .cache/cassandra
