/*
 * Secondary-CPU entry of plat-kvm-arm-rs, in place of the tree's
 * plat/common/arm/lcpu_start.S (Unikraft 0.17 and 0.18 alike).
 *
 * PSCI CPU_ON enters here, MMU off, with x0 = this CPU's struct lcpu. Two
 * differences from the tree's entry. A CPU started at EL2 (QEMU
 * virtualization=on) first drops to EL1 as the boot CPU did (the tree's entry
 * assumes EL1, and such a secondary never comes up). And TPIDR_EL1 holds the
 * struct lcpu before any C code runs. Unikraft's lcpu_arch_init() initialises a secondary's GIC
 * (plat/common/arm/lcpu.c:118-122) before it sets TPIDR_EL1 (:125), and the
 * GICv3 driver finds its redistributor through lcpu_get_current()
 * (drivers/ukintctlr/gic/gic-v3.c:68), which asserts that TPIDR_EL1 points into
 * lcpus[] (plat/common/arm/lcpu.c:141): without this, an SMP image on a GICv3
 * (kvmtool, QEMU gic-version=3) stops at that assertion on its first secondary.
 */
#include <uk/asm.h>
#include <uk/plat/common/lcpu.h>
#include <uk/reloc.h>

.text
ENTRY(lcpu_start)
	mov	x9, x0				/* plat_el2_to_el1 and start_mmu keep x9 */
	mrs	x10, CurrentEL
	cmp	x10, #(2 << 2)
	b.ne	1f
	bl	plat_el2_to_el1			/* ffi/src/arch/entry.S */
	mov	x0, x9
1:	msr	daifset, #2			/* IRQs stay masked until the C side */
	msr	tpidr_el1, x0			/* lcpu_get_current() works from here */
	msr	contextidr_el1, xzr
	ur_ldr	x10, vector_table		/* Unikraft's vectors before the MMU */
	msr	vbar_el1, x10
	bl	start_mmu			/* the boot tables (arm64_bpt_l3_pt0) */
	mov	x0, x9
	ldr	x10, [x0, #LCPU_STACKP_OFFSET]
	mov	sp, x10
	ldr	x10, [x0, #LCPU_ENTRY_OFFSET]
	br	x10				/* entry(struct lcpu *): never returns */
END(lcpu_start)
