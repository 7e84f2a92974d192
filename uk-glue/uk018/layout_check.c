/*
 * Build-time check for Unikraft 0.18, compiled by Unikraft's own compiler against the tree's real
 * headers: the layouts and constants that plat-kvm-arm-rs writes (ffi/src/uk018/mod.rs, which
 * reuses ffi/src/uk017's layouts) are those of this Unikraft tree. A mismatch stops the
 * build here instead of corrupting the boot info at run time. Emits no code.
 */
#include "../layout_check_common.h"
#include <uk/console/driver.h>

/* 0.18 numbering: no CMDLINE type; DEVICETREE, STACK and DEVICE moved down a bit. */
#ifdef UKPLAT_MEMRT_CMDLINE
#error "plat-kvm-arm-rs: this tree has UKPLAT_MEMRT_CMDLINE: it is not the 0.18 line"
#endif
PLAT_CHECK(UKPLAT_MEMRT_FREE == 0x01);
PLAT_CHECK(UKPLAT_MEMRT_RESERVED == 0x02);
PLAT_CHECK(UKPLAT_MEMRT_KERNEL == 0x04);
PLAT_CHECK(UKPLAT_MEMRT_INITRD == 0x08);
PLAT_CHECK(UKPLAT_MEMRT_DEVICETREE == 0x10);
PLAT_CHECK(UKPLAT_MEMRT_STACK == 0x20);
PLAT_CHECK(UKPLAT_MEMRT_DEVICE == 0x40);

/* struct uk_console, registered by the Rust hand-off (ffi/src/uk018/handoff.rs). */
PLAT_CHECK(sizeof(struct uk_console) == 48);
PLAT_CHECK(offsetof(struct uk_console, id) == 0);
PLAT_CHECK(offsetof(struct uk_console, ops) == 8);
PLAT_CHECK(offsetof(struct uk_console, name) == 16);
PLAT_CHECK(offsetof(struct uk_console, flags) == 24);
PLAT_CHECK(offsetof(struct uk_console, _list) == 32);
PLAT_CHECK(sizeof(struct uk_console_ops) == 16);
PLAT_CHECK(offsetof(struct uk_console_ops, out) == 0);
PLAT_CHECK(offsetof(struct uk_console_ops, in) == 8);
PLAT_CHECK(UK_CONSOLE_FLAG_STDOUT == 1);
PLAT_CHECK(UK_CONSOLE_FLAG_STDIN == 2);
