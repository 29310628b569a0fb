# The two commands a new user needs: `make up` (deploy dev) and `make test`. See README.md.
SHELL := /bin/bash
# HOSTS=3: the dev tiers on three Docker hosts of this machine (scripts/hosts), stack dev3.
HOSTS ?= 1
STACK ?= $(if $(filter 3,$(HOSTS)),dev3,dev)
ENV := source .state/env.sh &&
PULUMI := $(ENV) pulumi --cwd . --stack $(STACK)

.PHONY: bootstrap up hosts preview deploy compliance drift destroy test test-unit images outputs report bench

bootstrap:
	bash scripts/bootstrap --for up

## Deploy the dev stack (set-up first), then print the endpoints. `make up HOSTS=3`: on three
## Docker hosts of this machine (network namespaces, a Swarm; `make destroy HOSTS=3`, then
## `scripts/hosts down`).
up: bootstrap $(if $(filter 3,$(HOSTS)),hosts)
	bash scripts/stack-select $(STACK)
	$(if $(filter 3,$(HOSTS)),bash scripts/hosts config $(STACK))
	$(ENV) venv/bin/python scripts/preflight.py $(STACK)
	@cat .state/providers 2>/dev/null || true
	$(PULUMI) up --yes --policy-pack policies --policy-pack-config policies/config/$(STACK).json
	$(PULUMI) stack output

hosts: bootstrap
	bash scripts/hosts up
	venv/bin/python scripts/dev3-stack

preview: bootstrap
	bash scripts/stack-select $(STACK)
	$(PULUMI) preview --policy-pack policies --policy-pack-config policies/config/$(STACK).json

## Deploy STACK only from a preview that passed its policies, then `pulumi up` of exactly that
## plan (scripts/deploy); a violation refuses it before any resource changes. The deploy workflow's
## prod job runs this (no set-up there: the runner has the CLI and the virtualenvs).
deploy:
	$(if $(wildcard .state/env.sh),source .state/env.sh && ,)python3 scripts/deploy --stack $(STACK) --refresh

## Compliance report: a real `pulumi preview` of STACK with the pack and policies/config/$(STACK).json,
## written as reports/compliance-$(STACK).json and .md (control -> policies -> each resource).
## Locally the stack's remote Docker host is stood in for by this engine (scripts/compliance-report).
compliance: bootstrap
	venv/bin/python scripts/compliance-report --stack $(STACK)

## Drift check: `pulumi preview --refresh --expect-no-changes`; exits non-zero with the list of
## resources changed by hand (scripts/drift). `pulumi up --refresh` puts them back.
drift: bootstrap
	$(ENV) python3 scripts/drift --stack $(STACK)

destroy: bootstrap
	$(PULUMI) destroy --yes

outputs:
	$(PULUMI) stack output

images:
	bash scripts/build-images

## Every test layer: unit (mocks), config (real tools), policies, live, engine (preview and end to end).
## The live phases and checks also land in reports/ for `make report`.
test:
	rm -f reports/live-phases.json reports/rollout.json
	bash scripts/bootstrap --for test
	venv/bin/python -m pytest tests app/tests -ra --junitxml=reports/live-junit.xml

## Deploy, check and destroy the stack again, then print the phase timings and every live check.
report:
	rm -f reports/live-phases.json
	bash scripts/bootstrap --for test
	-venv/bin/python -m pytest tests/live tests/e2e -ra --junitxml=reports/live-junit.xml
	python3 scripts/e2e-report
	-python3 scripts/rollout-report

## Releases, a failed rollout with its rollback, a failing migration, an HAProxy config change and a
## certificate re-issue through `pulumi up` under load, for 2 and 4 app servers; prints the figures.
bench:
	rm -f reports/rollout.json
	bash scripts/bootstrap --for test
	venv/bin/python -m pytest tests/live/test_rollout.py -ra
	python3 scripts/rollout-report

test-unit:
	venv/bin/python -m pytest tests/unit tests/policies app/tests -q
