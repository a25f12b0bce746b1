# tproxy.envoy: everything a user or CI runs. The lab and `make test` need root (namespaces,
# iptables, dockerd); `make check` does not (the venv only: `make venv`).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLLECTION_LINK := .cache/collections/ansible_collections/tproxy/envoy
# The lab's inventory: `make lab LAB_INVENTORY=inventories/lab-fleet` builds and configures the fleet lab
# (tools/lab/lab.sh reads the same variable). Exported as an absolute path: molecule and
# build-install-test.sh run lab.sh from other directories.
LAB_INVENTORY ?= inventories/lab
override LAB_INVENTORY := $(abspath $(LAB_INVENTORY))
export LAB_INVENTORY
LAB := -i $(LAB_INVENTORY)
PYTEST := python -m pytest -q -p no:cacheprovider

.PHONY: help bootstrap packages venv dev collection lab site verify teardown lab-down test check unit integration \
        aws-test lab-test reboot-test topology-test molecule-namespace molecule-docker sanity lint changelog-lint changelog \
        build-install build-install-lab ee-check docs-check docs bench bench-scale bench-smoke lab-smoke \
        golden golden-check sanity-matrix monitoring-check fleet-test topology-test-1 topology-test-2

help:
	@echo "make lab       set everything up, bring the namespace lab up, run site.yml and verify.yml"
	@echo "make test      everything CI runs (unit, sanity, lint, integration, molecule)"
	@echo "make check     the fast subset for development: no lab, no root (unit, lint, sanity, golden, docs)"
	@echo "make verify    run verify.yml against the lab"
	@echo "make lab-down  teardown.yml, then remove the lab"
	@echo "make bench     benchmarks in the lab (make bench-scale: and on larger labs)"

# Everything: Debian packages (root) and the venv.
bootstrap:
	@tools/scripts/bootstrap.sh all

# Debian packages only (root): the lab, the benchmarks, the tests that need root.
packages:
	@tools/scripts/bootstrap.sh packages

# The controller venv only (.venv from requirements.txt): no root.
venv:
	@tools/scripts/bootstrap.sh venv

# Ansible finds the collection through a link to this checkout. `dev` is what needs no root
# (the venv and the link); `collection` adds the Debian packages.
dev: venv
	@mkdir -p $(dir $(COLLECTION_LINK)) && ln -sfn $(CURDIR) $(COLLECTION_LINK)

collection: packages dev

lab: collection
	tools/lab/lab.sh up
	ansible-playbook $(LAB) playbooks/site.yml
	ansible-playbook $(LAB) playbooks/verify.yml

site: collection
	ansible-playbook $(LAB) playbooks/site.yml

verify: collection
	ansible-playbook $(LAB) playbooks/verify.yml

teardown: collection
	ansible-playbook $(LAB) playbooks/teardown.yml

lab-down: collection
	@if tools/lab/lab.sh status >/dev/null 2>&1; then ansible-playbook $(LAB) playbooks/teardown.yml; fi
	tools/lab/lab.sh down

# --- tests -----------------------------------------------------------------
unit: dev
	$(PYTEST) tests/unit tools/bench/tests

# Golden files (no root, no lab): the router's Envoy configuration and rule set for each
# variable set of tests/golden/cases.yml. `make golden` rewrites them; review with git diff.
golden-check: dev
	python tests/golden/golden.py

golden: dev
	python tests/golden/golden.py --update

# The alert rules and dashboard of roles/monitoring (no root, no lab): promtool check rules, promtool
# test rules on tests/monitoring/rules_cases.yml (a firing and a silent case per alert), a runbook
# section per alert in docs/monitoring.md, and every dashboard query parsed by promtool.
monitoring-check: dev
	python tests/monitoring/check.py

integration: collection
	$(PYTEST) tests/integration/test_tproxy_kernel_integration.py

# Two workers, each with a moto server of its own: the tests share nothing (a tag each).
aws-test: collection
	$(PYTEST) -n 2 tests/integration/aws

# Root, and no lab up: brings its own lab up and down.
lab-test: collection
	$(PYTEST) tests/lab/test_lab_lifecycle.py

# Root: boots a router and a client with systemd as init (systemd-nspawn) on a lab of its own, beside
# the main one; proves that their boot units bring interception and routes back, closed until Envoy
# listens, without Ansible (issue 14); removes everything.
reboot-test: collection
	$(PYTEST) tests/reboot

# Root: brings its own lab up, runs the router's protections, changes under load, the transparent
# hop and the policy on it, takes the lab down; prints its slowest steps so that growth shows.
TOPOLOGY := tests/topology --ignore=tests/topology/test_fleet.py
topology-test: collection
	$(PYTEST) --durations=15 $(TOPOLOGY)

# The same modules in two halves, for `make test`: each half on a lab of its own, at the same time (most
# of their time is spent waiting on Envoy, timers and the network). The second half runs on the main
# lab's twin (TWIN_LAB: the same hosts and addresses under other names, tools/lab/inventory.py twin);
# the first half is every other module, so that a new module always runs.
TOPOLOGY_SECOND_HALF := test_change_under_load.py test_egress_probes.py test_monitoring.py \
                        test_nftables.py test_policy.py test_settings_change.py test_transparency.py
TWIN_LAB := $(CURDIR)/.cache/lab-twin
topology-test-1: collection
	$(PYTEST) --durations=15 $(TOPOLOGY) $(TOPOLOGY_SECOND_HALF:%=--ignore=tests/topology/%)

topology-test-2: collection
	python tools/lab/inventory.py twin $(LAB_INVENTORY) $(TWIN_LAB) tproxy-twin
	LAB_INVENTORY=$(TWIN_LAB) $(PYTEST) --durations=15 $(TOPOLOGY_SECOND_HALF:%=tests/topology/%)

# Root: the two-router fleet lab (inventories/lab-fleet), a lab of its own.
fleet-test: collection
	$(PYTEST) --durations=15 tests/topology/test_fleet.py

molecule-namespace: collection
	molecule test -s namespace

# Starts the controller's engine only if none answers; stops it only if it was started here.
molecule-docker: collection
	tools/scripts/docker-engine.sh start
	TPROXY_DOCKER_SOCK=/run/docker.sock $(PYTEST) tests/lab/test_images.py && molecule test -s docker; \
	  rc=$$?; tools/scripts/docker-engine.sh stop; exit $$rc

sanity: dev
	tools/scripts/sanity.sh all

# sanity + units on every ansible-core minor that meta/runtime.yml's requires_ansible claims
# (other minors in ~/.cache/tproxy-envoy/venv-core-<minor>, created on first use).
sanity-matrix: dev
	tools/scripts/sanity-matrix.sh

lint: dev
	ansible-lint

changelog-lint: venv
	antsibull-changelog lint
	antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	@out=$$(mktemp) && antsibull-changelog generate --output $$out --output-format rst && diff -u CHANGELOG.rst $$out; rc=$$?; rm -f $$out; exit $$rc

# Files new or edited fragments into the galaxy.yml version and regenerates CHANGELOG.rst. Until a
# version's tarball is published, later fragments join it; once it is, bump galaxy.yml's version
# first, or they would be filed under the published one. `changelog-lint` passes with fragments
# not yet filed (CHANGELOG.rst shows released versions only).
changelog: venv
	antsibull-changelog release --version $$(python -c 'import yaml;print(yaml.safe_load(open("galaxy.yml"))["version"])') --refresh-fragments without-archives
	@rm -f changelogs/.plugin-cache.yaml

build-install: dev
	tools/scripts/build-install-test.sh

build-install-lab: collection
	tools/scripts/build-install-test.sh --run-lab

ee-check: bootstrap
	tools/scripts/ee-check.sh

docs-check: venv
	tools/scripts/role-vars-table.py --check README.md --exclude netstate --exclude engine
	python tools/bench/readme.py --check README.md

docs: venv
	tools/scripts/role-vars-table.py --update README.md --exclude netstate --exclude engine

# Benchmarks (lab only; at most 15 min: the data path, the lab's own container deployed with its
# defaults and variants, the instruction counts, the playbooks). Results in tools/bench/results/.
bench: collection
	python tools/bench/run.py

# The same plus the playbooks on larger labs (about 6 min more: the lab is taken down meanwhile).
bench-scale: collection
	python tools/bench/run.py --scale

# Needs the lab up with site.yml applied (make lab); about 30 s.
bench-smoke: collection
	python tools/bench/run.py --smoke

# On a lab of its own, removed afterwards (part of make test): the built and installed
# collection runs site and verify, the bench smoke runs on what it built, then its teardown.
lab-smoke: collection
	tools/lab/lab.sh up
	tools/scripts/build-install-test.sh --run-lab --while-up 'python tools/bench/run.py --smoke'; \
	  rc=$$?; [ $$rc = 0 ] || ansible-playbook $(LAB) playbooks/teardown.yml; tools/lab/lab.sh down; exit $$rc

# --- what `make check` and `make test` run ----------------------------------
# Tiers, cheapest first; tools/scripts/run-targets.sh runs them in order, stops at the first
# failure and prints the seconds each target took. To add a target, put its name in its tier:
# CHECK_TARGETS needs no root and no lab (development, minutes: its targets depend on `dev`
# only, never on `packages`); LAB_TARGETS use the main lab, one after another; SECOND_LAB_TARGETS
# use labs of their own (the twin, reboot's, the fleet's), one after another, beside the main lab's once
# lab-test has passed (it checks that a lab leaves no process behind, which another lab up beside it
# would spoil); BESIDE_TARGETS need root but no lab namespace. In `make test` the three lanes run at the
# same time: the labs' tests spend much of their time waiting on Envoy, timers and the network.
# sanity-matrix is every sanity test on the newest ansible-core that requires_ansible claims (its unit
# tests are `make unit`), and units plus the release-dependent sanity tests on the older ones.
CHECK_TARGETS := docs-check changelog-lint golden-check monitoring-check unit lint sanity-matrix
LAB_TARGETS := lab-test topology-test-1 molecule-namespace lab-smoke
SECOND_LAB_TARGETS := reboot-test topology-test-2 fleet-test
BESIDE_TARGETS := $(CHECK_TARGETS) ee-check integration aws-test molecule-docker
TEST_TARGETS := $(LAB_TARGETS) $(SECOND_LAB_TARGETS) $(BESIDE_TARGETS)

check: dev
	@MAKE="$(MAKE)" RUN_TARGETS_LABEL="make check" tools/scripts/run-targets.sh $(CHECK_TARGETS)

# Everything CI runs (.ci/run): the main lab's targets, the other labs' beside them once lab-test has
# passed, and the others beside both.
test: collection
	@MAKE="$(MAKE)" RUN_TARGETS_LABEL="make test" tools/scripts/run-targets.sh $(LAB_TARGETS) \
	  --beside --after lab-test $(SECOND_LAB_TARGETS) --beside $(BESIDE_TARGETS)
