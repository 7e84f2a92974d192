/*
 * Secondary-CPU entry of plat-kvm-arm-rs on Unikraft 0.21, in place of the
 * tree's plat/common/arm/lcpu_start.S.
 *
 * plat/native's lcpu_pm.c starts a CPU with PSCI CPU_ON at the physical address
 * of lcpu_start, MMU off, x0 = the CPU's index. This does what the tree's entry
 * does (IRQs masked, FP/SIMD on, VBAR_EL1, start_mmu with the boot tables,
 * TPIDR_EL1 = _uk_pcpuvar_base + idx * _uk_pcpuvar_tmpl_size, then stack,
 * argument and entry from the per-CPU UK_LCPU_{SSTACKP,SARG,SENTRY}_SYM), and
 * first drops a CPU started at EL2 (QEMU virtualization=on) to EL1 as the boot
 * CPU did: the tree's entry assumes EL1.
 */
#include <uk/config.h>
#include <uk/asm.h>
#include <uk/lcpu.h>
#include <uk/reloc.h>

.text
ENTRY(lcpu_start)
	mov	x9, x0				/* plat_el2_to_el1 keeps x9 */
	mrs	x10, CurrentEL
	cmp	x10, #(2 << 2)
	b.ne	1f
	bl	plat_el2_to_el1			/* ffi/src/arch/entry.S */
1:	msr	daifset, #2			/* IRQs stay masked until the C side */
	mov	x19, x9				/* start_mmu keeps x19 */

#if CONFIG_FPSIMD
	ldr	x0, =(3 << 20)
	msr	cpacr_el1, x0
	isb
#endif /* CONFIG_FPSIMD */

	msr	contextidr_el1, xzr
	ur_addr	x29, vector_table		/* Unikraft's vectors before the MMU */
	msr	VBAR_EL1, x29
	bl	start_mmu			/* the boot tables (arm64_bpt_l3_pt0) */

	uk_pcpuvar_arm64_tpidrval	x0, x19
	adrp	x1, _uk_pcpuvar_base
	add	x1, x1, #:lo12:_uk_pcpuvar_base
	add	x0, x0, x1
	msr	tpidr_el1, x0

	uk_pcpuvar_arm64_ldr	x0, UK_LCPU_SSTACKP_SYM, x1
	mov	sp, x0
	uk_pcpuvar_arm64_ldr	x0, UK_LCPU_SARG_SYM, x1
	uk_pcpuvar_arm64_ldr	x1, UK_LCPU_SENTRY_SYM, x2
	br	x1
END(lcpu_start)
