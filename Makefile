# netshoot-build: `make image` builds the default image, `make test` runs
# the tests. Both install what they need first (scripts/install-deps.sh).

CARGO ?= cargo
OUT ?= out/netshoot
SPEC ?= tools/netshoot.toml
BIN := target/release/netshoot-build

.PHONY: deps image test bench bench-crates export push clean

deps:
	bash scripts/install-deps.sh

$(BIN): deps FORCE
	$(CARGO) build --release -p netshoot-build

FORCE:

image: $(BIN)
	$(BIN) build --spec $(SPEC) --out $(OUT)
	@echo
	@echo "Built $(OUT). Next:"
	@echo "  inspect: $(BIN) inspect --layout $(OUT)"
	@echo "  run:     $(BIN) export --layout $(OUT) --format docker -o netshoot-docker.tar && podman load -i netshoot-docker.tar && podman run -it --rm localhost/netshoot:dev"
	@echo "  export:  $(BIN) export --layout $(OUT) --format docker -o netshoot-docker.tar  (docker load -i ...)"
	@echo "           $(BIN) export --layout $(OUT) --format oci -o netshoot-oci.tar"

test: deps
	$(CARGO) test --workspace --no-fail-fast

export: $(BIN)
	$(BIN) export --layout $(OUT) --format oci -o netshoot-oci.tar

bench: deps
	bash scripts/bench.sh

# Cold and warm static builds of the Rust tools per target (slow: minutes
# per tool and target).
bench-crates: deps
	bash scripts/bench-crates.sh

clean:
	rm -rf out target
