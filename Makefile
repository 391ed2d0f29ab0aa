# cloudinfer-operator. `make test` and `make demo` install everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := dev,controlplane,sim,sdk-oracles,bench
CLUSTER_DIR := .cluster

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@hack/check-python.sh $(PYTHON)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv with pinned dependencies

.PHONY: k8s
k8s: ## build kube-apiserver, controller-manager, scheduler, kubelet, kubectl, etcd and helm into ~/.cache/cloudinfer
	@hack/build-k8s.sh

.PHONY: prometheus
prometheus: ## build prometheus and promtool (for the observability tests) into ~/.cache/cloudinfer
	@hack/build-prometheus.sh

.PHONY: lint
lint: $(STAMP) ## ruff, mypy --strict and import-linter
	$(BIN)/ruff check operator tests hack bench
	$(BIN)/ruff format --check operator tests hack bench
	$(BIN)/mypy operator
	$(BIN)/lint-imports

.PHONY: test
test: $(STAMP) lint ## lint, the whole suite against a real control plane and Prometheus, then the node tier
	@bin_dir="$$(hack/build-k8s.sh)" && prom_dir="$$(hack/build-prometheus.sh)" && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" CLOUDINFER_PROMETHEUS_BIN="$$prom_dir" \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-node

# The node tier needs Linux and root. CLOUDINFER_SKIP_NODE=1 runs nothing and says so loudly.
define NODE_SKIPPED
echo; echo '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'; \
echo '!!  THE NODE TIER DID NOT RUN (CLOUDINFER_SKIP_NODE=1).                       !!'; \
echo '!!  The image, the Helm chart and deploy/install.yaml were NOT tried on a real   !!'; \
echo '!!  kubelet. Run `make test-node` on Linux as root before trusting a release.  !!'; \
echo '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
endef

.PHONY: test-node
test-node: $(STAMP) ## the node tier: the Dockerfile's image on a real kubelet + containerd (Linux, root)
	@if [ "$(CLOUDINFER_SKIP_NODE)" = 1 ]; then $(NODE_SKIPPED); exit 0; fi; \
	hack/check-node-host.sh && hack/install-node-deps.sh && \
	bin_dir="$$(hack/build-k8s.sh)" && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" CLOUDINFER_NODE=1 $(BIN)/python -m pytest tests/node $(NODE_PYTEST_ARGS)

.PHONY: test-soak
test-soak: $(STAMP) lint ## soak runs, not in `make test`: cloud endpoint down 60 s, 500/10000 Hypothesis examples
	@bin_dir="$$(hack/build-k8s.sh)" && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" CLOUDINFER_SOAK=1 $(BIN)/python -m pytest tests/reliability -m soak $(PYTEST_ARGS)

.PHONY: test-kind
test-kind: $(STAMP) ## the opt-in kind suite: image, Helm install, core scenario in-cluster (needs Docker)
	@command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || { \
	  echo "make test-kind needs a running Docker engine (kind runs Kubernetes in Docker)." >&2; \
	  echo "Install Docker, start it, and rerun; 'make test' covers everything else without it." >&2; \
	  exit 1; }
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[kind]'
	CLOUDINFER_KIND=1 $(BIN)/python -m pytest tests/e2e_kind -p pytest_kind $(PYTEST_ARGS)

.PHONY: test-live
test-live: $(STAMP) ## opt-in contract suite against real clouds (CLOUDINFER_LIVE_*; read-only unless a write service is named)
	CLOUDINFER_LIVE=1 $(BIN)/python -m pytest tests/live $(PYTEST_ARGS)

.PHONY: cluster
cluster: $(STAMP) ## start a local control plane in the background
	@bin_dir="$$(hack/build-k8s.sh)" && \
	  $(BIN)/cloudinfer-controlplane up --detach --state-dir $(CLUSTER_DIR) --bin-dir "$$bin_dir" && \
	  echo "  export PATH=$$bin_dir:\$$PATH   # kubectl and helm built from source"

.PHONY: cluster-down
cluster-down: ## stop the control plane started by `make cluster`
	@if [ -x $(BIN)/cloudinfer-controlplane ]; then \
	  $(BIN)/cloudinfer-controlplane down --state-dir $(CLUSTER_DIR); \
	else echo "No control plane is running."; fi

.PHONY: crds
crds: $(STAMP) ## regenerate crds/*.yaml and docs/api.md from the pydantic models
	$(BIN)/python -m cloudinfer.api.crdgen .

.PHONY: fmt
fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format operator tests hack bench
	$(BIN)/ruff check --fix operator tests hack bench

.PHONY: constraints
constraints: ## re-pin every dependency into constraints.txt (needs PyPI)
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/pip install --quiet -e '.[$(EXTRAS),kind]'
	{ echo "# Pinned versions of every Python dependency (direct and transitive)."; \
	  echo "# Regenerate with: make constraints"; \
	  .venv-pin/bin/pip freeze --exclude-editable | grep -v '^-e'; } > constraints.txt
	rm -rf .venv-pin

.PHONY: demo
demo: $(STAMP) ## control plane + simulators + operator: watch services converge, drift fixed, a window fire
	@bin_dir="$$(hack/build-k8s.sh)" && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" $(BIN)/python hack/demo.py

.PHONY: clean
clean: cluster-down ## remove the venv and local state (keeps the binary cache)
	rm -rf $(VENV) $(CLUSTER_DIR) .mypy_cache .ruff_cache .pytest_cache

.PHONY: manifests
manifests: ## copy crds/ into the chart, render deploy/{install,crds}.yaml and argocd/argocd-cm.yaml
	cp crds/*.yaml charts/cloudinfer-operator/crds/
	@bin_dir="$$(hack/build-k8s.sh)" && \
	  HELM="$$bin_dir/helm" deploy/render-install.sh install > deploy/install.yaml.tmp && \
	  HELM="$$bin_dir/helm" deploy/render-install.sh crds > deploy/crds.yaml.tmp
	mv deploy/install.yaml.tmp deploy/install.yaml
	mv deploy/crds.yaml.tmp deploy/crds.yaml
	argocd/render-argocd-cm.sh > argocd/argocd-cm.yaml

.PHONY: dashboard
dashboard: $(STAMP) ## regenerate the chart's Grafana dashboard from hack/dashboard.py
	$(BIN)/python hack/dashboard.py > charts/cloudinfer-operator/files/grafana-dashboard.json.tmp
	mv charts/cloudinfer-operator/files/grafana-dashboard.json.tmp charts/cloudinfer-operator/files/grafana-dashboard.json

.PHONY: bench
bench: $(STAMP) ## benchmarks, quick (N = 10, 100, 300; ~5 min): bench/results/<date>-quick.{json,md,png}
	@bin_dir="$$(hack/build-k8s.sh)" && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" $(BIN)/python bench/run.py --config quick $(BENCH_ARGS)

.PHONY: bench-full
bench-full: $(STAMP) ## benchmarks, full (TI-ONE N = 100, 300, 1000; ModelArts and Qianfan N = 300): bench/results/<date>-full.{json,md,png}
	@bin_dir="$$(hack/build-k8s.sh)" && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" $(BIN)/python bench/run.py --config full $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: $(STAMP) ## benchmarks at N = 10,000 TI-ONE services, one account then 10 (~1 h): bench/results/<date>-scale{,-10-accounts}.{json,md,png}
	@bin_dir="$$(hack/build-k8s.sh)" && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" $(BIN)/python bench/run.py --config scale $(BENCH_ARGS) && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" $(BIN)/python bench/run.py --config scale-10-accounts $(BENCH_ARGS)

.PHONY: bench-shard
bench-shard: $(STAMP) ## sharding: N = 10,000 TI-ONE services over 20 accounts on 1 replica, then 4 (--shard), and a failover: bench/results/<date>-shard.{json,md,png}
	@bin_dir="$$(hack/build-k8s.sh)" && \
	  CLOUDINFER_K8S_BIN="$$bin_dir" $(BIN)/python bench/run.py --config shard $(BENCH_ARGS)
