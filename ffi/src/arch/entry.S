/*
 * Boot entry of the Rust KVM arm64 platform (the role of Unikraft's
 * plat/kvm/arm/entry64.S). Linux arm64 boot protocol: MMU off, x0 = DTB.
 *
 * Only what cannot be Rust is here: the Image header, leaving EL2, disabling a
 * left-on MMU, the first stacks and the early vectors. Everything else,
 * including building the page tables, enabling the MMU and zeroing .bss, is done
 * by plat_boot() in Rust, which is written not to need the MMU (strict
 * alignment, no atomics, no .bss) and invalidates what it wrote before turning
 * caches on.
 */

	.equ SCTLR_M, (1 << 0)
	.equ SCTLR_C, (1 << 2)
	.equ BOOT_STACK_SIZE, (32 * 1024)
	.equ EXC_STACK_SIZE, (8 * 1024)

/* Linux arm64 Image header (Documentation/arch/arm64/booting.rst). */
	.section .text.head, "ax"
	.global _plat_head
_plat_head:
	b	_libkvmplat_entry		/* code0 */
	.long	0				/* code1 */
	.quad	_plat_text_offset		/* from the linker script */
	.quad	_plat_image_size		/* from the linker script */
	.quad	0x2	/* LE, 4 KiB pages, 2 MiB base close to RAM start (not PIE) */
	.quad	0, 0, 0				/* res2..res4 */
	.ascii	"ARM\x64"			/* magic */
	.long	0				/* res5: no PE header */

	.section .text.boot, "ax"
	.global _libkvmplat_entry
	.type _libkvmplat_entry, %function
_libkvmplat_entry:
	mov	x19, x0				/* DTB, kept in a callee-saved register */
	mov	x20, #0				/* flags: bit 0 = entered at EL2 */

	mrs	x0, CurrentEL
	ubfx	x0, x0, #2, #2
	cmp	x0, #1
	b.eq	.Lat_el1
	cmp	x0, #2
	b.ne	.Lbad_el

	/*
	 * Entered at EL2 (QEMU virt,virtualization=on; stock Unikraft 0.17 hangs
	 * here): continue at EL1h.
	 */
	bl	plat_el2_to_el1
	mov	x20, #1

.Lat_el1:
	/* A loader that left the MMU on: clean what it may have cached, turn it off. */
	mrs	x0, sctlr_el1
	tbz	x0, #0, 2f
	ldr	x0, =_plat_image_start
	ldr	x1, =_plat_image_end
	bl	plat_dcache_clean_inval
	mrs	x0, sctlr_el1
	bic	x0, x0, #SCTLR_M
	bic	x0, x0, #SCTLR_C
	msr	sctlr_el1, x0
	isb
2:
	ldr	x0, =plat_early_vectors
	msr	vbar_el1, x0
	isb

	/*
	 * Arm CCA realm probe, on a stack in .data (loaded with the image, so RIPAS
	 * RAM in a realm): .bss, the boot stack and the page-table pool may be RIPAS
	 * EMPTY until RSI_IPA_STATE_SET makes them RAM, which must happen before the
	 * first store to them. Returns the shared IPA bit (0: not a realm). Without
	 * the `realm` feature it returns 0 at once and issues no SMC.
	 */
	ldr	x0, =plat_early_stack
	ldr	x1, =plat_early_stack_size
	ldr	x1, [x1]
	add	x0, x0, x1
	mov	sp, x0
	mov	x0, x19
	bl	plat_realm_probe
	mov	x21, x0

	/*
	 * .bss is zeroed by plat_boot once the MMU and caches are on (as Linux
	 * does, and with DC ZVA): nothing before that touches it. What is written
	 * with caches off (.data state, stacks, page tables) is invalidated from
	 * the caches before they are turned on.
	 */
	ldr	x0, =plat_boot_stack_top
	mov	sp, x0
	mov	x0, x19
	mov	x1, x20
	mov	x2, x21
	bl	plat_boot			/* never returns */
.Lbad_el:
	/* EL0 or EL3: nothing here can report it; park the CPU. */
	wfe
	b	.Lbad_el
	.size _libkvmplat_entry, . - _libkvmplat_entry

/*
 * plat_el2_to_el1: called at EL2 with the MMU off; sets EL2 up for an EL1 guest
 * (nothing EL1 needs trapped) and returns to the caller at EL1h, DAIF masked,
 * MMU and caches off. Clobbers x0 and x1. Used by the boot CPU here and by
 * secondary CPUs (uk-glue/lcpu_start.S), which PSCI starts at EL2 too.
 */
	.section .text.boot, "ax"
	.global plat_el2_to_el1
	.type plat_el2_to_el1, %function
plat_el2_to_el1:
	mov	x0, #(1 << 31)			/* HCR_EL2.RW: EL1 is AArch64 */
	orr	x0, x0, #(3 << 40)		/* HCR_EL2.APK|API: no PAuth traps */
	msr	hcr_el2, x0
	mov	x0, #0x33ff			/* CPTR_EL2: RES1 bits, no FP/SVE traps */
	msr	cptr_el2, x0
	mrs	x0, cnthctl_el2
	orr	x0, x0, #3			/* EL1PCTEN | EL1PCEN: timers for EL1 */
	msr	cnthctl_el2, x0
	msr	cntvoff_el2, xzr
	msr	vttbr_el2, xzr
	mrs	x0, midr_el1
	msr	vpidr_el2, x0
	mrs	x0, mpidr_el1
	msr	vmpidr_el2, x0
	/* GICv3 system registers for EL1, when the CPU has them. */
	mrs	x0, id_aa64pfr0_el1
	ubfx	x0, x0, #24, #4
	cbz	x0, 2f
	mrs	x0, S3_4_C12_C9_5		/* ICC_SRE_EL2 */
	mov	x1, #0x9			/* Enable | SRE */
	orr	x0, x0, x1
	msr	S3_4_C12_C9_5, x0
	isb
2:	ldr	x0, =0x30d00800			/* SCTLR_EL1 RES1 bits, MMU and caches off */
	msr	sctlr_el1, x0
	mov	x0, #0x3c5			/* EL1h, DAIF masked */
	msr	spsr_el2, x0
	msr	elr_el2, x30			/* "return" to the caller, at EL1 */
	isb
	eret
	.ltorg
	.size plat_el2_to_el1, . - plat_el2_to_el1

/* Data-cache maintenance by VA over [x0, x1); clobbers x0, x2, x3. */
	.global plat_dcache_inval
plat_dcache_inval:
	mrs	x3, ctr_el0
	ubfx	x3, x3, #16, #4			/* DminLine: log2(words) */
	mov	x2, #4
	lsl	x2, x2, x3			/* line size in bytes */
	sub	x3, x2, #1
	bic	x0, x0, x3
5:	dc	ivac, x0
	add	x0, x0, x2
	cmp	x0, x1
	b.lo	5b
	dsb	sy
	ret

	.global plat_dcache_clean_inval
plat_dcache_clean_inval:
	mrs	x3, ctr_el0
	ubfx	x3, x3, #16, #4
	mov	x2, #4
	lsl	x2, x2, x3
	sub	x3, x2, #1
	bic	x0, x0, x3
6:	dc	civac, x0
	add	x0, x0, x2
	cmp	x0, x1
	b.lo	6b
	dsb	sy
	ret

/*
 * Early exception vectors: every entry switches to a dedicated stack (the
 * fault may be a bad SP) and reports through plat_early_trap(kind), which
 * prints ESR/ELR/FAR/SPSR and powers off. Never a silent hang.
 */
.macro early_vector kind
	.balign 0x80
	ldr	x0, =plat_exc_stack_top
	mov	sp, x0
	mov	x0, #\kind
	bl	plat_early_trap
	b	.
.endm
	.section .text.boot
	.balign 0x800
	.global plat_early_vectors
plat_early_vectors:
	early_vector 0
	early_vector 1
	early_vector 2
	early_vector 3
	early_vector 4
	early_vector 5
	early_vector 6
	early_vector 7
	early_vector 8
	early_vector 9
	early_vector 10
	early_vector 11
	early_vector 12
	early_vector 13
	early_vector 14
	early_vector 15
	.ltorg

	.section .plat_noinit.stacks, "aw", %nobits
	.balign 16
	.space BOOT_STACK_SIZE
	.global plat_boot_stack_top
plat_boot_stack_top:
	.space EXC_STACK_SIZE
	.global plat_exc_stack_top
plat_exc_stack_top:
