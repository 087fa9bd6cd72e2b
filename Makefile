# mp3mesh: the targets people expect. Every target sets up what it needs first.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: help bootstrap proto proto-check descriptor envoy-check lint fmt test test-unit up demo clean \
	images lock-images k8s-validate k8s-dev-secrets k8s-smoke bench fresh-check \
	k8s-cluster k8s-cluster-down k8s-e2e helm-chart compose-secrets compose-check docs

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

bootstrap:  ## virtualenv, dependencies, buf, the project's PostgreSQL cluster, a running RabbitMQ
	@scripts/bootstrap.sh

proto: bootstrap  ## regenerate the Python stubs in gen/ from protos/
	scripts/genproto.sh

proto-check: bootstrap  ## fail if gen/ is stale
	@tmp=$$(mktemp -d) && scripts/genproto.sh $$tmp && diff -r $$tmp/mp3mesh gen/mp3mesh && rm -rf $$tmp && echo "gen/ is up to date"

descriptor: bootstrap  ## envoy/descriptor.binpb from protos/ (buf build), for Envoy's transcoder
	scripts/build_descriptor.sh

envoy-check: descriptor  ## render the Envoy config into var/ and check it with envoy --mode validate
	mkdir -p var
	python envoy/render.py -o var/envoy.yaml --require-descriptor
	envoy --mode validate -c var/envoy.yaml --disable-hot-restart

lint: bootstrap proto-check  ## buf lint, buf breaking against main, ruff, mypy
	buf lint
	buf breaking --against '.git#branch=main'

	ruff check .
	ruff format --check .
	mypy

docs:  ## regenerate docs/configuration.md from the settings classes (needs only the virtualenv)
	@test -x $(VENV)/bin/python || scripts/bootstrap.sh
	$(VENV)/bin/python -m scripts.gen_config_docs

fmt: bootstrap  ## format the Python code
	ruff format .
	ruff check --fix .

test: ## run the whole test suite, k8s-validate, k8s-smoke and compose-check included (sets everything up, starts its own stack)
	@scripts/bootstrap.sh --test
	@scripts/container_tools.sh
	MP3MESH_K8S_SMOKE=1 MP3MESH_COMPOSE=1 $(VENV)/bin/pytest

test-unit:  ## the unit tier alone (tests/unit): no services, well under 30 s
	@test -x $(VENV)/bin/pytest || scripts/bootstrap.sh --test
	@test node_modules/.installed -nt package.json || scripts/bootstrap.sh --test  # the pinned tus client
	$(VENV)/bin/pytest tests/unit -q -p no:cacheprovider

bench: ## benchmarks on a stack of their own, figures side by side with baselines -> bench/results.md (~5 min)
	@scripts/bootstrap.sh --test
	$(VENV)/bin/python -m bench

up: bootstrap  ## run the local mesh in the foreground (Ctrl-C stops everything)
	honcho -e stack.env start

demo: bootstrap  ## start the mesh, convert a generated video end to end, show the MP3 and the email
	$(VENV)/bin/python -m scripts.demo

images: bootstrap  ## build the images with podman (mp3mesh, mp3mesh-envoy; base made by debootstrap if need be)
	scripts/images.sh

fresh-check:  ## make demo in a fresh clone of HEAD on bare Debian 12 and 13 containers (podman, debootstrap base); checks the MP3 and the mail
	scripts/fresh_check.sh

lock-images:  ## re-resolve requirements-image.txt, the images' exact Python versions
	scripts/lock_image_deps.sh

k8s-validate: bootstrap  ## render each k8s/ overlay; schemas, cross-checks an API server would make, checkov
	$(VENV)/bin/pytest tests/k8s/test_k8s_manifests.py -q --durations=5

k8s-smoke:  ## build the images, run the dev overlay's mesh Deployments as pods (podman kube play), convert a video through Envoy
	@scripts/bootstrap.sh --test
	scripts/container_tools.sh
	MP3MESH_K8S_SMOKE=1 $(VENV)/bin/pytest tests/k8s/test_k8s_smoke.py -v -p no:cacheprovider

compose-secrets:  ## write .env (git-ignored) with random passwords and auth's signing key for compose.yaml
	scripts/compose_secrets.sh

compose-check:  ## build the images and stand-ins, podman-compose up compose.yaml in a network namespace, convert a video through Envoy, down -v
	@scripts/bootstrap.sh --test
	scripts/container_tools.sh
	MP3MESH_COMPOSE=1 $(VENV)/bin/pytest tests/k8s/test_compose.py -v -p no:cacheprovider --durations=5

k8s-cluster:  ## build (cached, ~20 min cold) and start a real control plane with 3 kwok nodes on 127.0.0.1 (scripts/k8s_cluster.sh)
	scripts/k8s_cluster.sh up
	@echo 'use it: eval "$$(scripts/k8s_cluster.sh env)"; stop it: make k8s-cluster-down'

k8s-cluster-down:  ## stop the control plane of make k8s-cluster; nothing is left running
	scripts/k8s_cluster.sh down

k8s-e2e: bootstrap  ## every overlay, and the Helm chart, on a real API server, controllers and kwok nodes: apply, ready, re-apply, upgrade, drain, README; helm lint/install/upgrade/test/uninstall
	MP3MESH_K8S_E2E=1 $(VENV)/bin/pytest tests/k8s/test_k8s_e2e.py tests/k8s/test_helm_chart.py -v -p no:cacheprovider --durations=5; \
	  rc=$$?; scripts/k8s_cluster.sh down; exit $$rc

helm-chart:  ## regenerate k8s/chart/mp3mesh/files/ from the overlays (after any change under k8s/base or k8s/overlays)
	python3 scripts/helm_chart_gen.py

k8s-dev-secrets:  ## write k8s/overlays/dev/secrets.env (git-ignored) with random passwords
	scripts/k8s_dev_secrets.sh

clean:  ## stop the project's PostgreSQL cluster and remove local data (var/)
	scripts/postgres.sh remove
	rm -rf var
