# plat-kvm-arm-rs: the project's verbs.
#   make test    everything CI runs
#   make bench   print the benchmark figures
#   make run     boot hello world  [VMM=qemu|kvmtool] [REALM=1] [UK_ROOT=...]
# Build products go to target/ (cargo) and build/ (images).

CARGO      ?= cargo
TARGET     := aarch64-unknown-none-softfloat
BUILD      := $(CURDIR)/build
export CARGO_TERM_COLOR ?= never

.PHONY: all test bench run setup lint host-test staticlib vmm-model-test clean

all: staticlib

setup:
	scripts/setup.sh

staticlib:
	$(CARGO) build --release -p plat-kvm-arm-ffi --target $(TARGET)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p plat-kvm-arm-rs -p plat-kvm-arm-ffi --target $(TARGET) -- -D warnings

host-test:
	$(CARGO) test --workspace

vmm-model-test:
	@if [ -x tests/vmm-model/run-tests ]; then tests/vmm-model/run-tests; \
	else echo "SKIPPED: vmm-model tests (tests/vmm-model/run-tests not present yet)"; fi

test: lint staticlib host-test vmm-model-test
	@echo "make test: all passed"

bench:
	$(CARGO) run -q --release -p plat-tests --bin bench-console

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
