# tproxy.envoy: everything a user or CI runs. Needs root (namespaces, iptables, dockerd).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLLECTION_LINK := .cache/collections/ansible_collections/tproxy/envoy
LAB_INVENTORY := inventories/lab

.PHONY: help bootstrap collection lab verify site teardown lab-down test unit lint sanity \
        molecule-namespace molecule-docker bench bench-smoke

help:
	@echo "make lab       bring the namespace lab up, run site.yml, then verify.yml"
	@echo "make verify    run verify.yml against the lab"
	@echo "make lab-down  teardown.yml, then remove the lab"
	@echo "make test      everything CI runs"
	@echo "make bench     benchmarks (lab only)"

bootstrap:
	@scripts/bootstrap.sh

# Ansible finds the collection through a link to this checkout.
collection: bootstrap
	@mkdir -p $(dir $(COLLECTION_LINK)) && ln -sfn $(CURDIR) $(COLLECTION_LINK)

lab: collection
	lab/lab.sh up
	ansible-playbook -i $(LAB_INVENTORY) playbooks/site.yml
	ansible-playbook -i $(LAB_INVENTORY) playbooks/verify.yml

site: collection
	ansible-playbook -i $(LAB_INVENTORY) playbooks/site.yml

verify: collection
	ansible-playbook -i $(LAB_INVENTORY) playbooks/verify.yml

teardown: collection
	ansible-playbook -i $(LAB_INVENTORY) playbooks/teardown.yml

lab-down: collection
	@if lab/lab.sh status >/dev/null 2>&1; then ansible-playbook -i $(LAB_INVENTORY) playbooks/teardown.yml; fi
	lab/lab.sh down

unit: collection
	cd $(COLLECTION_LINK) && python -m pytest -q tests/unit

molecule-namespace: collection
	molecule test -s namespace

test: collection unit molecule-namespace
