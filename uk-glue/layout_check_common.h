/*
 * The boot-info layouts plat-kvm-arm-rs writes (ffi/src/uk017/mod.rs), the same in
 * Unikraft 0.17 and 0.18: included by uk-glue/<release>/layout_check.c, which adds
 * the release's own numbers. Compiled against the tree's real headers.
 */
#ifndef PLAT_KVM_ARM_LAYOUT_CHECK_COMMON_H
#define PLAT_KVM_ARM_LAYOUT_CHECK_COMMON_H

#include <stddef.h>
#include <uk/config.h>
#include <uk/plat/memory.h>
#include <uk/plat/common/bootinfo.h>

#if CONFIG_UKPLAT_MEMRNAME
#error "plat-kvm-arm-rs: CONFIG_UKPLAT_MEMRNAME (80-byte memory regions) is not supported"
#endif

#define PLAT_CHECK(cond) _Static_assert(cond, "plat-kvm-arm-rs layout: " #cond)

PLAT_CHECK(sizeof(struct ukplat_memregion_desc) == 48);
PLAT_CHECK(offsetof(struct ukplat_memregion_desc, pbase) == 0);
PLAT_CHECK(offsetof(struct ukplat_memregion_desc, vbase) == 8);
PLAT_CHECK(offsetof(struct ukplat_memregion_desc, pg_off) == 16);
PLAT_CHECK(offsetof(struct ukplat_memregion_desc, len) == 24);
PLAT_CHECK(offsetof(struct ukplat_memregion_desc, pg_count) == 32);
PLAT_CHECK(offsetof(struct ukplat_memregion_desc, type) == 40);
PLAT_CHECK(offsetof(struct ukplat_memregion_desc, flags) == 42);
PLAT_CHECK(_Alignof(struct ukplat_memregion_desc) == 8);

PLAT_CHECK(sizeof(struct ukplat_bootinfo) == 80);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, magic) == 0);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, version) == 4);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, bootloader) == 8);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, bootprotocol) == 24);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, cmdline) == 40);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, cmdline_len) == 48);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, dtb) == 56);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, efi_st) == 64);
PLAT_CHECK(offsetof(struct ukplat_bootinfo, mrds) == 72);
PLAT_CHECK(offsetof(struct ukplat_memregion_list, capacity) == 0);
PLAT_CHECK(offsetof(struct ukplat_memregion_list, count) == 4);
PLAT_CHECK(offsetof(struct ukplat_memregion_list, mrds) == 8);
PLAT_CHECK(UKPLAT_BOOTINFO_MAGIC == 0xb007b0b0);

PLAT_CHECK(UKPLAT_MEMRF_READ == 0x1);
PLAT_CHECK(UKPLAT_MEMRF_WRITE == 0x2);
PLAT_CHECK(UKPLAT_MEMRF_EXECUTE == 0x4);

#endif /* PLAT_KVM_ARM_LAYOUT_CHECK_COMMON_H */
