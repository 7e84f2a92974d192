# plat-kvm-arm-rs: the project's verbs.
#   make test    everything CI runs
#   make bench   print the benchmark figures
#   make run     boot hello world  [VMM=qemu|kvmtool] [REALM=1] [UK_ROOT=...]
# Build products go to target/ (cargo) and build/ (images).

CARGO      ?= cargo
TARGET     := aarch64-unknown-none-softfloat
BUILD      := $(CURDIR)/build
export CARGO_TERM_COLOR ?= never

CROSS      ?= aarch64-linux-gnu-
HARNESS_CFLAGS := -O2 -g -ffreestanding -fno-builtin -nostdlib -mgeneral-regs-only \
	-fno-pic -mstrict-align -Wall -Wextra -Werror -Iinclude -Wno-unused-function

.PHONY: all test bench run setup lint host-test staticlib vmm-model-test e2e-test harness header-check clean

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

# include/plat_kvm_arm.h is cbindgen's output and must match Unikraft 0.17's prototypes.
header-check:
	$(CARGO) run -q -p plat-tests --bin gen-header -- --check
	$(CROSS)gcc -fsyntax-only -Wall -Werror -Iinclude tests/harness/header-check.c
	$(CROSS)gcc -fsyntax-only -Wall -Werror -Iinclude -DPLAT_KVM_ARM_REALM tests/harness/header-check.c

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
	$(CROSS)gcc $(HARNESS_CFLAGS) $(if $(findstring realm,$(3)),-DPLAT_KVM_ARM_REALM) \
		-c tests/harness/hello.c -o $(BUILD)/harness-$(1)/hello.o
	$(CROSS)ld -nostdlib --gc-sections -T tests/harness/link.ld --defsym RAM_BASE=$(2) \
		-u _libkvmplat_entry $(BUILD)/harness-$(1)/hello.o $(BUILD)/harness-$(1)/libplatkvmarm.a -o $$@
$(BUILD)/harness-$(1)/hello.img: $(BUILD)/harness-$(1)/hello.elf
	$(CROSS)objcopy -O binary $$< $$@
endef
$(eval $(call harness,qemu,0x40000000,))
$(eval $(call harness,qemu-test,0x40000000,semihosting))
$(eval $(call harness,kvmtool,0x80000000,vmm-kvmtool))
$(eval $(call harness,kvmtool-realm,0x80000000,vmm-kvmtool realm))
$(eval $(call harness,kvmtool-realm-only,0x80000000,vmm-kvmtool realm-required))
FORCE:

harness: $(BUILD)/harness-qemu/hello.img $(BUILD)/harness-qemu-test/hello.img $(BUILD)/harness-kvmtool/hello.img $(BUILD)/harness-kvmtool-realm/hello.img $(BUILD)/harness-kvmtool-realm-only/hello.img

e2e-test: $(BUILD)/harness-qemu-test/hello.img $(BUILD)/harness-kvmtool/hello.img $(BUILD)/harness-kvmtool-realm/hello.img $(BUILD)/harness-kvmtool-realm-only/hello.img
	tests/e2e/run-qemu-tests $(BUILD)
	tests/e2e/run-kvmtool-tests $(BUILD)
	tests/e2e/run-realm-tests $(BUILD)

# make run [VMM=qemu|kvmtool] [REALM=1] [MEM=MiB] [CPUS=N] [CMDLINE=...]
# Boots the conformance harness (tests/harness, NOT Unikraft). VMM=kvmtool uses the
# machine model in tests/vmm-model (no arm64 KVM host needed).
VMM  ?= qemu
MEM  ?= $(if $(filter kvmtool,$(VMM)),64,128)
CPUS ?= 1
run:
ifeq ($(VMM),qemu)
	$(MAKE) --no-print-directory $(BUILD)/harness-qemu/hello.img
	qemu-system-aarch64 -M virt -cpu max -m $(MEM) -smp $(CPUS) -nographic -no-reboot \
		-kernel $(BUILD)/harness-qemu/hello.img $(if $(CMDLINE),-append "$(CMDLINE)")
else ifeq ($(VMM),kvmtool)
	$(MAKE) --no-print-directory $(BUILD)/harness-kvmtool$(if $(REALM),-realm)/hello.img
	tests/vmm-model/run $(BUILD)/harness-kvmtool$(if $(REALM),-realm)/hello.img --mem $(MEM) \
		--cpus $(CPUS) $(if $(REALM),--mode realm) $(if $(CMDLINE),--cmdline "$(CMDLINE)")
else
	@echo "make run: VMM must be qemu or kvmtool" >&2; exit 2
endif

test: lint staticlib host-test header-check vmm-model-test e2e-test
	@echo "make test: all passed"

bench: $(BUILD)/harness-qemu/hello.img $(BUILD)/harness-kvmtool-realm/hello.img
	$(CARGO) run -q --release -p plat-tests --bin bench-console
	tests/bench/boot-icount $(BUILD)
	tests/bench/realm-icount $(BUILD)

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
