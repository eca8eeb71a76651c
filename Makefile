# Baton. `make up` runs the demo on this machine; `make test` runs the tests.
# Both install what they need (containerd, runc) on Debian when it is missing.

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BUILD     := build
BATON     := $(BUILD)/baton
DATA_DIR  ?= /var/lib/baton
UP_FLAGS  ?=
SOCKET    := /run/containerd/containerd.sock

.PHONY: all build image images up test test-short bench fuzz lint deps test-deps containerd clean

all: build

build:
	$(GO) build -ldflags "-X main.Version=$(VERSION)" -o $(BATON) ./cmd/baton

# The hello example's image: a static Go binary packed into an OCI image
# archive (there is no registry to pull from).
image: $(BUILD)/hello.oci.tar
$(BUILD)/hello.oci.tar: examples/images/hello/main.go examples/images/internal/serve/serve.go internal/ociarchive/ociarchive.go cmd/baton-mkimage/main.go
	mkdir -p $(BUILD)
	CGO_ENABLED=0 $(GO) build -o $(BUILD)/hello ./examples/images/hello
	$(GO) run ./cmd/baton-mkimage -ref baton.local/hello:v1 -bin $(BUILD)/hello -o $@

# The counter example's images (examples/counter): kv and counter.
images: image $(BUILD)/kv.oci.tar $(BUILD)/counter.oci.tar
$(BUILD)/%.oci.tar: examples/images/%/main.go examples/images/internal/serve/serve.go internal/ociarchive/ociarchive.go cmd/baton-mkimage/main.go
	mkdir -p $(BUILD)
	CGO_ENABLED=0 $(GO) build -o $(BUILD)/$* ./examples/images/$*
	$(GO) run ./cmd/baton-mkimage -ref baton.local/$*:v1 -bin $(BUILD)/$* -o $@

# containerd, runc, the CNI plugins and iptables from Debian's packages, when missing.
deps:
	@if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! command -v git >/dev/null \
		|| ! command -v iptables >/dev/null || ! command -v nft >/dev/null || ! command -v ip >/dev/null || ! command -v nsenter >/dev/null \
		|| ! { [ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ]; }; then \
		echo "installing containerd, runc, git, containernetworking-plugins, iptables, nftables, iproute2 and util-linux"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc git containernetworking-plugins iptables nftables iproute2 util-linux; \
	fi

# Chromium and jq from Debian's packages, when missing: the dashboard's
# test drives Chromium headless; the AWS node-pool example uses jq.
test-deps: deps
	@if ! command -v chromium >/dev/null || ! command -v jq >/dev/null; then \
		echo "installing chromium (the dashboard's browser test) and jq (the AWS node-pool example)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium jq; \
	fi

# Start the system containerd in the background when it is not answering.
containerd: deps
	@if ! ctr --address $(SOCKET) version >/dev/null 2>&1; then \
		echo "starting containerd (log: /var/log/baton-containerd.log)"; \
		nohup containerd >/var/log/baton-containerd.log 2>&1 & \
		for i in $$(seq 1 100); do ctr --address $(SOCKET) version >/dev/null 2>&1 && exit 0; sleep 0.2; done; \
		echo "containerd did not start; see /var/log/baton-containerd.log"; exit 1; \
	fi

# The demo: embedded NATS, reconciler and agent, following a local config
# repository seeded from examples/hello (baton up starts its own containerd
# if none is running).
up: deps build image
	$(BATON) up --data-dir $(DATA_DIR) --image $(BUILD)/hello.oci.tar $(UP_FLAGS)

# Every test, with the race detector, against a real containerd.
test: containerd test-deps
	BATON_E2E=1 $(GO) test -race -count=1 -timeout 15m ./...

# The pure parts only: no containerd needed.
test-short:
	$(GO) test -race -short ./...

# The loaders' and the agent's command handler's fuzz targets, each for a
# bounded time (FUZZTIME).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoadYAML$$' -fuzztime $(FUZZTIME) ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzLoadCUE$$' -fuzztime $(FUZZTIME) ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzAgentCommand$$' -fuzztime $(FUZZTIME) ./nodeagent

# Pure benchmarks, then the end-to-end ones (real containerd, 5 runs each).
# 1,000 real agents on simulated runtimes over real NATS: 10,000 replicas
# from an empty cluster to converged, on one server (open, then secured) and on
# three (R3) (TestFleet, a bounded version, runs in make test).
scale:
	$(GO) test -run '^$$' -bench Fleet -benchtime 3x -timeout 30m ./reconciler

bench: containerd
	$(GO) test -run '^$$' -bench . -benchmem ./desired ./schedule ./reconciler
	BATON_E2E=1 $(GO) test -run '^$$' -bench . -benchtime 5x -timeout 30m ./cmd/baton

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed on the files above"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf $(BUILD)
