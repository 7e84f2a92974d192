/*
 * The boot CPU's per-CPU registers, set by the Rust hand-off right before
 * _ukplat_entry (Unikraft 0.17 and 0.18 alike).
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
 */
#include <uk/config.h>
#include <uk/essentials.h>
#include <uk/arch/lcpu.h>
#include <uk/plat/config.h>
#include <uk/plat/lcpu.h>
#include <uk/plat/common/lcpu.h>

void plat_uk_bsp_early(__uptr trap_sp)
{
	struct lcpu *bsp = lcpu_get_bsp();

	SYSREG_WRITE64(tpidr_el1, (__uptr)bsp);
	SYSREG_WRITE64(sp_el0, trap_sp);
}
