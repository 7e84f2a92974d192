/* Compiled by `make test`: the generated header must agree with the project's
 * declarations of Unikraft 0.17's prototypes (a mismatch is a conflicting-types
 * error), and the platform must export each of them. */
#include "uk017/plat.h"
#include "plat_kvm_arm.h"

void *const plat_kvm_arm_exports[] = {
	(void *)ukplat_coutk,
	(void *)ukplat_coutd,
	(void *)ukplat_cink,
	(void *)ukplat_terminate,
};
