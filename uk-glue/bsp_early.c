/*
 * The boot CPU's per-CPU registers, set by the Rust hand-off right before
 * _ukplat_entry (Unikraft 0.17 to 0.21).
 *
 * _ukplat_entry runs early init, paging and the interrupt-controller probe before
 * lcpu_init(lcpu_get_bsp()) sets TPIDR_EL1 and SP_EL0 (plat/common/arm/lcpu.c,
 * lcpu_arch_init). Until then the GICv3 driver's lcpu_get_current() asserts in an
 * SMP build, and a trap (a device access that faults, say) enters Unikraft's
 * vectors with a garbage exception stack and wedges silently. Here TPIDR_EL1 gets
 * the boot CPU's struct lcpu (what lcpu_arch_init() writes later), and SP_EL0 the
 * top of the Rust entry's exception stack, idle once VBAR_EL1 points at Unikraft's
 * vectors, as a stand-in trap stack (the tree's is static to lcpu.c) until
 * lcpu_arch_init() installs the real one: such a trap is then reported by
 * Unikraft's handler. Only the trap half (below SP_EL0) is ever used: IRQs stay
 * masked until lcpu_init.
 *
 * Unikraft 0.20 moved the exception stacks above SP_EL0: SP_EL0 is the base of
 * three CPU_EXCEPT_STACK_SIZE stacks (crit, trap, IRQ), and a trap runs at
 * SP_EL0 + 2 * CPU_EXCEPT_STACK_SIZE (plat/kvm/arm/exceptions.S, SAVE_REGS). There
 * the tree exports the base (traps_lcpu_get_except_stack_base(), lcpu.c), so the
 * boot CPU gets the value lcpu_arch_init() writes for it later, and trap_sp is
 * not used.
 *
 * Unikraft 0.21 (per-CPU variables, lib/ukpcpuvar): TPIDR_EL1 holds the address
 * of this CPU's copy of the per-CPU variables, _uk_pcpuvar_base for the boot CPU
 * (what the tree's plat/kvm/arm/entry64.S writes after start_mmu), and
 * exceptions run on the per-CPU uk_plat_native_except_stack_base (+ 1, 2 or 3
 * stacks), which uk_lcpu_init() -> uk_plat_native_except_init() sets; here it
 * gets the same value (the boot CPU is index 0) before _ukplat_entry runs.
 */
#include <uk/config.h>
#include <uk/essentials.h>

#if PLATRS_UK_SUBVERSION >= 21
#include <uk/pcpuvar.h>
#include <uk/plat/native/except.h>

void plat_uk_bsp_early(__uptr trap_sp __unused)
{
	__uptr base = (__uptr)_uk_pcpuvar_base;

	__asm__ __volatile__("msr tpidr_el1, %0\n\tisb" : : "r"(base) : "memory");
	uk_pcpuvar_current_set(uk_plat_native_except_stack_base,
			       uk_plat_native_except_get_except_stack_base());
}
#else
#include <uk/arch/lcpu.h>
#include <uk/plat/config.h>
#include <uk/plat/lcpu.h>
#include <uk/plat/common/lcpu.h>

#if PLATRS_UK_SUBVERSION >= 20
/* plat/common/arm/lcpu.c of 0.20 (not declared in a header). */
__isr __uptr traps_lcpu_get_except_stack_base(void);
#endif

void plat_uk_bsp_early(__uptr trap_sp)
{
	struct lcpu *bsp = lcpu_get_bsp();

	SYSREG_WRITE64(tpidr_el1, (__uptr)bsp);
#if PLATRS_UK_SUBVERSION >= 20
	(void)trap_sp;
	/* The boot CPU's slot is the first: idx 0 (plat/common/arm/lcpu.c). */
	SYSREG_WRITE64(sp_el0, traps_lcpu_get_except_stack_base());
#else
	SYSREG_WRITE64(sp_el0, trap_sp);
#endif
}
#endif /* PLATRS_UK_SUBVERSION >= 21 */
