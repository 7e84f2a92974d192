/*
 * Unikraft 0.20.0 only: a secondary CPU's exception stacks.
 *
 * 0.20's lcpu_arch_init() (plat/common/arm/lcpu.c) writes SP_EL0 =
 * &lcpu_except_stack[idx * CPU_EXCEPT_STACK_SIZE * 3], but lcpu_except_stack is
 * a per-CPU two-dimensional array ([CONFIG_UKPLAT_LCPU_MAXCOUNT][3 *
 * CPU_EXCEPT_STACK_SIZE], UKPLAT_PER_LCPU_ARRAY_DEFINE in uk/plat/lcpu.h), so
 * the index is scaled twice: for CPU 1 with the default 64 KiB stacks SP_EL0
 * lands 36 GiB past the array, and the first interrupt on a secondary (the RUN
 * IPI) takes data aborts on that stack forever. The tree's C platform does the
 * same (an SMP app's secondaries never run a function on v0.20.0).
 *
 * Makefile.uk links libkvmplat with --wrap=lcpu_arch_init, so plat/common/lcpu.c's
 * call comes here: the tree's function runs, then SP_EL0 gets the base of this
 * CPU's three stacks, the value 0.20's exceptions.S and
 * lcpu_get_current_in_except() (plat/common/lcpu.c) expect. IRQs are still masked
 * (lcpu_init enables nothing before it returns).
 */
#include <uk/config.h>
#include <uk/essentials.h>
#include <uk/arch/lcpu.h>
#include <uk/plat/config.h>
#include <uk/plat/lcpu.h>
#include <uk/plat/common/lcpu.h>

int __real_lcpu_arch_init(struct lcpu *this_lcpu);
/* plat/common/arm/lcpu.c of 0.20 (not declared in a header). */
__isr __uptr traps_lcpu_get_except_stack_base(void);

int __wrap_lcpu_arch_init(struct lcpu *this_lcpu)
{
	int rc = __real_lcpu_arch_init(this_lcpu);

	if (rc == 0)
		SYSREG_WRITE64(sp_el0, traps_lcpu_get_except_stack_base() +
			       (__uptr)this_lcpu->idx * 3 * CPU_EXCEPT_STACK_SIZE);
	return rc;
}
