/*
 * Build-time check for Unikraft 0.17, compiled by Unikraft's own compiler against the tree's real
 * headers: the layouts and constants that plat-kvm-arm-rs writes (ffi/src/uk017/mod.rs,
 * include/uk017/plat.h) are those of this Unikraft tree. A mismatch stops the
 * build here instead of corrupting the boot info at run time. Emits no code.
 */
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

PLAT_CHECK(UKPLAT_MEMRT_FREE == 0x01);
PLAT_CHECK(UKPLAT_MEMRT_RESERVED == 0x02);
PLAT_CHECK(UKPLAT_MEMRT_KERNEL == 0x04);
PLAT_CHECK(UKPLAT_MEMRT_INITRD == 0x08);
PLAT_CHECK(UKPLAT_MEMRT_CMDLINE == 0x10);
PLAT_CHECK(UKPLAT_MEMRT_DEVICETREE == 0x20);
PLAT_CHECK(UKPLAT_MEMRT_STACK == 0x40);
PLAT_CHECK(UKPLAT_MEMRT_DEVICE == 0x80);
PLAT_CHECK(UKPLAT_MEMRF_READ == 0x1);
PLAT_CHECK(UKPLAT_MEMRF_WRITE == 0x2);
PLAT_CHECK(UKPLAT_MEMRF_EXECUTE == 0x4);
