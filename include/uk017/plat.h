/*
 * The project's own declarations of the Unikraft RELEASE-0.17.0 platform
 * interface that plat-kvm-arm-rs implements or calls (signatures and layouts as
 * in include/uk/plat/{console,bootstrap,memory}.h and
 * plat/common/include/uk/plat/common/{bootinfo,memory}.h of that release).
 * Used by the conformance harness and by the header check, where no Unikraft
 * tree is available. Written for this project, not copied from Unikraft.
 */
#ifndef PLAT_KVM_ARM_UK017_PLAT_H
#define PLAT_KVM_ARM_UK017_PLAT_H

#include <stdint.h>

enum ukplat_gstate {
	UKPLAT_HALT,
	UKPLAT_RESTART,
	UKPLAT_SUSPEND,
	UKPLAT_CRASH,
};

#define UKPLAT_MEMRT_FREE	0x0001
#define UKPLAT_MEMRT_RESERVED	0x0002
#define UKPLAT_MEMRT_KERNEL	0x0004
#define UKPLAT_MEMRT_INITRD	0x0008
#define UKPLAT_MEMRT_CMDLINE	0x0010
#define UKPLAT_MEMRT_DEVICETREE	0x0020
#define UKPLAT_MEMRT_STACK	0x0040
#define UKPLAT_MEMRT_DEVICE	0x0080

struct ukplat_memregion_desc {
	uint64_t pbase;
	uint64_t vbase;
	uint64_t pg_off;
	uint64_t len;
	uint64_t pg_count;
	uint16_t type;
	uint16_t flags;
} __attribute__((packed, aligned(8)));

struct ukplat_memregion_list {
	uint32_t capacity;
	uint32_t count;
	struct ukplat_memregion_desc mrds[];
} __attribute__((packed));

#define UKPLAT_BOOTINFO_MAGIC	0xb007b0b0

struct ukplat_bootinfo {
	uint32_t magic;
	uint8_t version;
	uint8_t _pad0[3];
	char bootloader[16];
	char bootprotocol[16];
	uint64_t cmdline;
	uint64_t cmdline_len;
	uint64_t dtb;
	uint64_t efi_st;
	struct ukplat_memregion_list mrds;
} __attribute__((packed));

_Static_assert(sizeof(struct ukplat_memregion_desc) == 48, "mrd layout");
_Static_assert(sizeof(struct ukplat_bootinfo) == 80, "bootinfo layout");

/* Provided by the platform (plat-kvm-arm-rs). */
int ukplat_coutk(const char *buf, unsigned int len);
int ukplat_coutd(const char *buf, unsigned int len);
int ukplat_cink(char *buf, unsigned int maxlen);
void ukplat_terminate(enum ukplat_gstate request) __attribute__((noreturn));

/* Called by the platform: Unikraft's plat/common and plat/kvm/arm/setup.c. */
struct ukplat_bootinfo *ukplat_bootinfo_get(void);
void ukplat_memregion_list_coalesce(struct ukplat_memregion_list *list);
void _ukplat_entry(void) __attribute__((noreturn));

#endif /* PLAT_KVM_ARM_UK017_PLAT_H */
