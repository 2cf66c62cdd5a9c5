# Navigator: the two commands are `make demo` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help build controlplane flux vcd-conformance cluster demo test lint generate check-generated ci deps helm-lint bench image node

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## Build the navigator binary
	$(CARGO) build --bins

controlplane: ## Build etcd, kube-apiserver, kube-controller-manager, kubectl and helm from Go modules (cached in .cache/bin)
	tests/controlplane/build.sh

flux: ## Build Flux's source-controller and kustomize-controller from their Go modules (cached in .cache/bin)
	tests/flux/build.sh

vcd-conformance: ## Build the Cloud Director conformance program (VMware's Go SDK) into .cache/bin when its sources changed
	tests/vcd-conformance/build.sh

node: ## Build kubelet, kube-proxy and kube-scheduler from the same Go module (cached in .cache/bin)
	tests/controlplane/build.sh --node

image: ## Build the operator's OCI image without Docker (buildah from scratch) into .cache/image; prints digest and size
	scripts/image.sh

cluster: controlplane $(if $(NODE),node) ## Start a local control plane on loopback until Ctrl-C (NODE=1: with a node that runs pods)
	$(CARGO) run -q -p navigator-testenv --bin navigator-testenv -- $(if $(NODE),--node)

demo: controlplane ## Show Navigator working end to end on a local control plane (Ctrl-C stops it; DEMO_EXIT=1 stops at the end)
	scripts/demo.sh

test: controlplane flux node deps vcd-conformance image ## Run every unit and integration test against a real control plane, then a DEMO_EXIT=1 demo
	scripts/test.sh

lint: ## Formatting, clippy with warnings as errors, generated files unchanged
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory check-generated
	$(MAKE) --no-print-directory helm-lint

deps: ## Install the system packages the tests need when missing (lua5.1, Request Tracker 5, prometheus and promtool, poppler-utils, buildah, containerd, runc, CNI plugins, nftables)
	scripts/deps.sh

helm-lint: controlplane ## helm lint --strict on the chart, with its default values and with every option on
	.cache/bin/helm lint --strict charts/navigator
	.cache/bin/helm lint --strict charts/navigator --set metrics.serviceMonitor.enabled=true,metrics.dashboards.enabled=true,metrics.prometheusRule.enabled=true,networkPolicy.enabled=true,rbac.credentialNamespaces={default}

generate: ## Regenerate the CRDs from the Rust types into crds/ and charts/navigator/crds/
	$(CARGO) run -q --bin navigator -- crds --out-dir crds --out-dir charts/navigator/crds

check-generated: generate ## Fail when committed generated files differ from what the code generates
	@git diff --exit-code --stat -- crds charts/navigator/crds || { echo "Generated files are stale: run 'make generate' and commit the result." >&2; exit 1; }
	@test -z "$$(git status --porcelain -- crds charts/navigator/crds)" || { echo "Untracked generated files: run 'make generate' and commit them." >&2; git status --porcelain -- crds charts/navigator/crds >&2; exit 1; }

bench: controlplane ## Scale benchmarks against the local control plane, one at a time; prints figures (NAVIGATOR_BENCH_OBJECTS, default 10000)
	$(CARGO) test --release --test integration bench:: -- --ignored --nocapture --test-threads=1

ci: ## What CI runs: lint, then test
	.ci/run
