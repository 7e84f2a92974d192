/*
 * Build-time check for Unikraft 0.17, compiled by Unikraft's own compiler against the tree's real
 * headers: the layouts and constants that plat-kvm-arm-rs writes (ffi/src/uk017/mod.rs,
 * include/uk017/plat.h) are those of this Unikraft tree. A mismatch stops the
 * build here instead of corrupting the boot info at run time. Emits no code.
 */
#include "../layout_check_common.h"

PLAT_CHECK(UKPLAT_MEMRT_FREE == 0x01);
PLAT_CHECK(UKPLAT_MEMRT_RESERVED == 0x02);
PLAT_CHECK(UKPLAT_MEMRT_KERNEL == 0x04);
PLAT_CHECK(UKPLAT_MEMRT_INITRD == 0x08);
PLAT_CHECK(UKPLAT_MEMRT_CMDLINE == 0x10);
PLAT_CHECK(UKPLAT_MEMRT_DEVICETREE == 0x20);
PLAT_CHECK(UKPLAT_MEMRT_STACK == 0x40);
PLAT_CHECK(UKPLAT_MEMRT_DEVICE == 0x80);
