# plat-kvm-arm-rs: the project's verbs.
#   make test    everything CI runs
#   make bench   print the benchmark figures
#   make fuzz-run / fuzz-coverage   fuzz campaigns (FUZZ_TIME s per target), coverage
#   make run     boot hello world  [VMM=qemu|kvmtool|rmm-qemu] [REALM=1] [UK_ROOT=...]
# Build products go to target/ (cargo) and build/ (images).

CARGO      ?= cargo
comma      := ,
TARGET     := aarch64-unknown-none-softfloat
BUILD      := $(CURDIR)/build
export CARGO_TERM_COLOR ?= never

CROSS      ?= aarch64-linux-gnu-
HARNESS_CFLAGS := -O2 -g -ffreestanding -fno-builtin -nostdlib -mgeneral-regs-only \
	-fno-pic -mstrict-align -Wall -Wextra -Werror -Iinclude -Wno-unused-function

.PHONY: all test bench run setup lint verify-realm verify-realm-test feature-matrix fuzz-smoke fuzz-run fuzz-coverage host-test staticlib vmm-model-test e2e-test harness header-check clean uk-test rmm-launcher-test

all: staticlib
	@echo "built target/$(TARGET)/release/libplatkvmarm.a (the platform's static library)."
	@echo "boot hello world: make run [VMM=qemu|kvmtool] [REALM=1] [UK_ROOT=/path/to/unikraft]; tests: make test"

setup:
	scripts/setup.sh

staticlib:
	$(CARGO) build --release -p plat-kvm-arm-ffi --target $(TARGET)

lint:
	$(CARGO) fmt --all -- --check
	cd tools/verify-realm && $(CARGO) fmt -- --check && $(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p plat-kvm-arm-rs -p plat-kvm-arm-ffi --target $(TARGET) -- -D warnings
	tests/lint/ffi-deps

# The captured device trees (../shared/fixtures or PLAT_FIXTURES): the fixture
# tests skip visibly without them, and fail under CI=true.
FIXTURES ?= $(or $(PLAT_FIXTURES),$(abspath $(CURDIR)/../shared/fixtures))
host-test:
	@if [ ! -d "$(FIXTURES)/dtb" ]; then \
		if [ "$$CI" = true ] || [ "$$CI" = 1 ]; then \
			echo "FAIL (CI): no fixtures at $(FIXTURES)/dtb (set PLAT_FIXTURES)"; exit 1; fi; \
		echo "SKIPPED: fixture tests (no $(FIXTURES)/dtb; set PLAT_FIXTURES)"; fi
	PLAT_FIXTURES=$(FIXTURES) $(CARGO) test --workspace

# Every feature set a Unikraft build (Makefile.uk) or the harness can ask for,
# built and clippy-clean.
feature-matrix:
	tests/lint/feature-matrix $(BUILD)

# include/plat_kvm_arm.h is cbindgen's output and must match Unikraft 0.17's prototypes.
header-check:
	$(CARGO) run -q -p plat-tests --bin gen-header -- --check
	$(CROSS)gcc -ffreestanding -fsyntax-only -Wall -Werror -Iinclude tests/harness/header-check.c
	$(CROSS)gcc -ffreestanding -fsyntax-only -Wall -Werror -Iinclude -DPLAT_KVM_ARM_REALM tests/harness/header-check.c

vmm-model-test:
	@if [ -x tests/vmm-model/run-tests ]; then tests/vmm-model/run-tests; \
	else echo "SKIPPED: vmm-model tests (tests/vmm-model/run-tests not present yet)"; fi

# Conformance harness images (tests/harness, NOT Unikraft): one per VMM, and a
# test variant for QEMU that exits through semihosting with a status.
#   build/harness-<variant>/hello.img
#   variants: qemu (RAM 0x40000000), qemu-test (+semihosting), kvmtool (RAM 0x80000000)
define harness
$(BUILD)/harness-$(1)/libplatkvmarm.a: FORCE
	@mkdir -p $$(@D)
	PLAT_UK_NAME=hello $(CARGO) build -q --release -p plat-kvm-arm-ffi --target $(TARGET) \
		--target-dir $(BUILD)/cargo-$(1) $(if $(3),--features "$(3)")
	cp $(BUILD)/cargo-$(1)/$(TARGET)/release/libplatkvmarm.a $$@
$(BUILD)/harness-$(1)/hello.elf: tests/harness/hello.c tests/harness/link.ld include/uk017/plat.h include/plat_kvm_arm.h $(BUILD)/harness-$(1)/libplatkvmarm.a
	$(CROSS)gcc $(HARNESS_CFLAGS) $(if $(findstring realm,$(3)),-DPLAT_KVM_ARM_REALM) $(if $(findstring virtio,$(3)),-DPLAT_KVM_ARM_VIRTIO) \
		-c tests/harness/hello.c -o $(BUILD)/harness-$(1)/hello.o
	$(CROSS)ld -nostdlib --gc-sections -T tests/harness/link.ld --defsym RAM_BASE=$(2) --defsym PLAT_PAD=$(or $(4),0) $(5) \
		-u _libkvmplat_entry $(BUILD)/harness-$(1)/hello.o $(BUILD)/harness-$(1)/libplatkvmarm.a -o $$@
$(BUILD)/harness-$(1)/hello.img: $(BUILD)/harness-$(1)/hello.elf
	$(CROSS)objcopy -O binary $$< $$@
endef
$(eval $(call harness,qemu,0x40000000,))
# The test build's stacks sit past a 2 MiB boundary (a 1 MiB gap before them), as a
# Unikraft image's do: the entry's early map must cover every block of the image.
$(eval $(call harness,qemu-test,0x40000000,semihosting,0x100000))
$(eval $(call harness,kvmtool,0x80000000,vmm-kvmtool))
$(eval $(call harness,kvmtool-realm,0x80000000,vmm-kvmtool realm))
$(eval $(call harness,kvmtool-realm-only,0x80000000,vmm-kvmtool realm-required))
# With the virtio drivers and the bounce pool (docs/realm-io.md); realm-capable.
$(eval $(call harness,kvmtool-virtio,0x80000000,vmm-kvmtool realm virtio virtio-blk virtio-net))
$(eval $(call harness,qemu-virtio,0x40000000,virtio virtio-blk virtio-net))
# One image for every VMM: relocatable (-pie), no fixed early UART, realm-capable.
# Linked at QEMU's RAM base; the entry relocates it wherever else it is loaded.
$(eval $(call harness,any,0x40000000,vmm-any realm,0,-pie --no-dynamic-linker))
FORCE:

HARNESS_IMGS = $(foreach v,qemu qemu-test kvmtool kvmtool-realm kvmtool-realm-only kvmtool-virtio qemu-virtio any,$(BUILD)/harness-$(v)/hello.img)
harness: $(HARNESS_IMGS)

# The attestation verifier (tools/verify-realm, its own lock file; docs/attestation.md).
verify-realm:
	cd tools/verify-realm && $(CARGO) build -q --release --locked
verify-realm-test: verify-realm
	cd tools/verify-realm && $(CARGO) test -q --release --locked

e2e-test: $(HARNESS_IMGS) verify-realm
	tests/e2e/run-qemu-tests $(BUILD)
	tests/e2e/run-kvmtool-tests $(BUILD)
	tests/e2e/run-realm-tests $(BUILD)
	tests/e2e/run-virtio-tests $(BUILD)
	tests/e2e/run-virtio-net-tests $(BUILD)

# make run [VMM=qemu|kvmtool] [REALM=1] [MEM=MiB] [CPUS=N] [CMDLINE=...] [GIC=2|3]
#          [UK_ROOT=/path/to/unikraft-0.17] [LKVM=/path/to/lkvm]
# With UK_ROOT: builds and boots the real Unikraft (0.17 to 0.21) app-helloworld
# (app-helloworld/, this platform as P=, the tree's plat/kvm as E=). Without it:
# the conformance harness (tests/harness, NOT Unikraft). VMM=kvmtool runs on real
# kvmtool when LKVM names an lkvm binary (an arm64 KVM host), otherwise on the
# machine model in tests/vmm-model (no arm64 KVM host needed). VMM=rmm-qemu boots the
# kvmtool realm image in a realm under the real TF-RMM: QEMU with RME_FIRMWARE (TF-A +
# TF-RMM, built by the user) and tools/rmm-launcher as BL33 (see its README).
VMM  ?= qemu
MEM  ?= $(if $(filter kvmtool,$(VMM)),64,128)
CPUS ?= 1
UK_ROOT ?=
LKVM ?=
GIC  ?=
RUN_VMM = $(if $(filter rmm-qemu,$(VMM)),kvmtool,$(VMM))
RUN_REALM = $(if $(filter rmm-qemu,$(VMM)),1,$(REALM))
# Unikraft builds go to build/uk-<release> (from the tree's version.mk).
UK_REL = $(shell sed -n 's/^UK_VERSION *= *//p' $(UK_ROOT)/version.mk).$(shell sed -n 's/^UK_SUBVERSION *= *//p' $(UK_ROOT)/version.mk)
RUN_IMG = $(if $(UK_ROOT),$(BUILD)/uk-$(UK_REL)/$(RUN_VMM)$(if $(RUN_REALM),-realm)/helloworld_$(RUN_VMM)-arm64,$(BUILD)/harness-$(RUN_VMM)$(if $(RUN_REALM),-realm)/hello.img)
run:
ifeq ($(filter qemu kvmtool rmm-qemu,$(VMM)),)
	@echo "make run: VMM must be qemu, kvmtool or rmm-qemu" >&2; exit 2
endif
ifneq ($(UK_ROOT),)
	$(MAKE) --no-print-directory -C app-helloworld UK_ROOT=$(UK_ROOT) VMM=$(RUN_VMM) \
		$(if $(RUN_REALM),REALM=1) OUT=$(BUILD)/uk-$(UK_REL)
else
	$(MAKE) --no-print-directory $(RUN_IMG)
endif
ifeq ($(VMM),qemu)
	qemu-system-aarch64 -M virt$(if $(GIC),$(comma)gic-version=$(GIC)) -cpu max -m $(MEM) \
		-smp $(CPUS) -nodefaults -display none -serial mon:stdio -no-reboot \
		-kernel $(RUN_IMG) $(if $(CMDLINE),-append "$(CMDLINE)")
else ifeq ($(VMM),rmm-qemu)
	tools/rmm-launcher/run $(RUN_IMG) --mem $(MEM) --cpus $(CPUS) \
		$(if $(CMDLINE),--cmdline "$(CMDLINE)") $(if $(RME_FIRMWARE),--firmware $(RME_FIRMWARE))
else ifneq ($(LKVM),)
	@command -v $(LKVM) >/dev/null || { echo "make run: LKVM=$(LKVM) is not an executable lkvm" >&2; exit 2; }
	@[ "$$(uname -m)" = aarch64 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "make run: real kvmtool needs an arm64 host with /dev/kvm (this is $$(uname -m)$$([ -e /dev/kvm ] || echo ', no /dev/kvm')); drop LKVM= to boot on the kvmtool machine model instead" >&2; exit 2; }
	$(if $(RUN_REALM),@$(LKVM) run --help 2>&1 | grep -q -- '--realm' || { echo "make run: REALM=1 needs a kvmtool-cca build of lkvm (this lkvm has no --realm option)" >&2; exit 2; })
	$(LKVM) run --nodefaults -k $(RUN_IMG) -m $(MEM) -c $(CPUS) --console serial -n mode=none \
		$(if $(RUN_REALM),--realm) $(if $(CMDLINE),-p "$(CMDLINE)")
else
	tests/vmm-model/run $(RUN_IMG) --mem $(MEM) \
		--cpus $(CPUS) $(if $(REALM),--mode realm) $(if $(CMDLINE),--cmdline "$(CMDLINE)")
endif

# Unikraft app-helloworld with this platform, built and booted (local only:
# CI has no Unikraft tree).
uk-test:
ifneq ($(UK_ROOT),)
	tests/e2e/run-uk-tests $(UK_ROOT) $(BUILD)
	tests/e2e/run-uk-uktest $(UK_ROOT) $(BUILD)
	$(MAKE) --no-print-directory verify-realm
	tests/e2e/run-attest-tests $(UK_ROOT) $(BUILD)
	tests/e2e/run-blk-tests $(UK_ROOT) $(BUILD)
	tests/e2e/run-net-tests $(UK_ROOT) $(BUILD)
else
	@echo "SKIPPED: Unikraft app-helloworld tests (set UK_ROOT to a Unikraft 0.17-0.21 tree)"
endif

# Differential tests of realm images: machine model vs the real TF-RMM (needs
# RME_FIRMWARE; prints SKIPPED without it).
rmm-launcher-test: $(BUILD)/harness-kvmtool-realm/hello.img $(BUILD)/harness-kvmtool-virtio/hello.img verify-realm
	cd tools/rmm-launcher && $(CARGO) build -q --release   # built even when the tests skip
	tools/rmm-launcher/run-tests $(BUILD)

# Fuzzing (fuzz/, docs/fuzzing.md): seeds from the fixtures, cargo-fuzz on the
# nightly toolchain. fuzz-smoke is the bounded run make test (and CI) does.
FUZZ_SMOKE_TIME ?= 30
FUZZ_TIME ?= 180
fuzz-smoke:
	tests/fuzz/run --time $(FUZZ_SMOKE_TIME)
fuzz-run:
	tests/fuzz/run --time $(FUZZ_TIME)
fuzz-coverage:
	tests/fuzz/coverage

test: lint feature-matrix staticlib host-test header-check vmm-model-test verify-realm-test e2e-test uk-test rmm-launcher-test fuzz-smoke
	@echo "make test: all passed"

bench: $(BUILD)/harness-qemu/hello.img $(BUILD)/harness-kvmtool-realm/hello.img
	$(CARGO) run -q --release -p plat-tests --bin bench-console
	tests/bench/boot-icount $(BUILD)
	tests/bench/realm-icount $(BUILD)
ifneq ($(UK_ROOT),)
	tests/bench/uk-compare $(UK_ROOT) $(BUILD)
	tests/bench/blk-compare $(UK_ROOT) $(BUILD)
	tests/bench/net-compare $(UK_ROOT) $(BUILD)
else
	@echo "SKIPPED: Unikraft comparison (set UK_ROOT to a Unikraft 0.17-0.21 tree)"
endif

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
