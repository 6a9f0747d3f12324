# netshoot-build: `make image` builds the default image, `make test` runs
# the tests. Both install what they need first (tools/scripts/install-deps.sh).

CARGO ?= cargo
OUT ?= out/netshoot
SPEC ?= tools/netshoot.toml
BIN := target/release/netshoot-build
# The image's version: the spec's [image] tag.
TAG := $(shell sed -n 's/^tag = "\([^"]*\)".*/\1/p' $(SPEC) | head -1)

.PHONY: deps image image-static bundle test test-platforms fuzz bench bench-crates bench-static export push clean

deps:
	bash tools/scripts/install-deps.sh

$(BIN): deps FORCE
	$(CARGO) build --release -p netshoot-build

FORCE:

image: $(BIN)
	$(BIN) build --spec $(SPEC) --out $(OUT)
	@echo
	@echo "Built $(OUT): netshoot:$(TAG) for every platform of $(SPEC). Next:"
	@echo "  inspect: $(BIN) inspect --layout $(OUT)"
	@echo "  run:     $(BIN) export --layout $(OUT) --format docker -o netshoot-docker.tar && podman load -i netshoot-docker.tar"
	@echo "           podman run -it --rm --net container:<name> localhost/netshoot:$(TAG)   (or --net host)"
	@echo "  push:    $(BIN) push --layout $(OUT) registry.example.com/team/netshoot:$(TAG)"
	@echo "  export:  $(BIN) export --layout $(OUT) --format oci -o netshoot-oci.tar   (every platform, for an air gap;"
	@echo "           then $(BIN) push --archive netshoot-oci.tar REGISTRY/REPO:$(TAG) on the other side)"
	@echo "  sbom:    $(BIN) sbom --layout $(OUT) --platform linux/amd64 [--format cyclonedx]"

# The static toolbox (see README, "Static toolbox").
image-static: $(BIN)
	$(BIN) build --spec $(SPEC) --variant static --out $(OUT)-static
	@echo "Built $(OUT)-static: netshoot:$(TAG)-static. Bundle for one platform: make bundle PLATFORM=linux/amd64"

PLATFORM ?= linux/amd64
bundle: $(BIN)
	$(BIN) export --static-bundle --spec $(SPEC) --platform $(PLATFORM) -o netshoot-static-$(subst /,-,$(PLATFORM)).tar.gz

test: deps
	$(CARGO) test --workspace --no-fail-fast

# The cargo fixture for arm/v7, riscv64, ppc64le and s390x (zig, and std
# compiled from rust-src where rustup has no rust-std for the target): a
# slow matrix kept out of `make test`; `make bench` runs it too.
test-platforms: deps
	$(CARGO) test --test cargo_e2e -- --ignored every_further_platform

# Coverage-guided fuzzing of every parser of outside input, libFuzzer on
# the stable toolchain (fuzz/README.md): FUZZ_SECONDS per target (default
# 30, one target at a time), FUZZ_TARGETS="deb spec" for some of them.
# Builds into target/fuzz; exits non-zero when a target finds a crash.
FUZZ_SECONDS ?= 30
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" bash fuzz/run.sh

export: $(BIN)
	$(BIN) export --layout $(OUT) --format oci -o netshoot-oci.tar

bench: deps test-platforms
	bash tools/scripts/bench.sh

# Cold and warm static builds of the Rust tools per target (slow: minutes
# per tool and target).
bench-crates: deps
	bash tools/scripts/bench-crates.sh

# The static toolbox: cold/warm time per entry, a second cold build
# compared, compressed sizes (slow: three full builds).
bench-static: deps
	bash tools/scripts/bench-static.sh

clean:
	rm -rf out target
