/*
 * Boot entry of the Rust KVM arm64 platform (the role of Unikraft's
 * plat/kvm/arm/entry64.S). Linux arm64 boot protocol: MMU off, x0 = DTB.
 *
 * Order, as vmbase, aarch64-rt and Linux do it: leave EL2, check that the
 * image runs where it was linked (else one line on the early UART and PSCI
 * SYSTEM_OFF), turn the MMU and caches on with a small identity map of the
 * image, the DTB and the early UART (2 MiB blocks, built here from where the
 * image really runs), and only then run Rust: the realm probe on a stack in
 * .data, .bss zeroed with DC ZVA, plat_boot on the boot stack. Nothing before
 * plat_mmu_on touches memory but the early tables (in .data, loaded with the
 * image: RIPAS RAM in a realm), one line each written and cleaned.
 *
 * Everything before the MMU is on addresses memory PC-relatively (adrp/adr),
 * so a misplaced image gets as far as its report. Constants come from Rust
 * (ffi/src/arch/mod.rs) as absolute symbols.
 */

	.equ SCTLR_M, (1 << 0)
	.equ SCTLR_C, (1 << 2)
	/* The platform's boot runs here, and Unikraft's _ukplat_entry until it
	 * switches to the __STACK_SIZE stack it allocates (STACK_SIZE_PAGE_ORDER),
	 * where its init and main run; so does the conformance harness, virtio
	 * self-tests included. 64 KiB, as Unikraft's default __STACK_SIZE. */
	.equ BOOT_STACK_SIZE, (64 * 1024)
	.equ EXC_STACK_SIZE, (8 * 1024)
	.equ IDMAP_TABLES, 6		/* root + 5: image, DTB, UART, realm alias */
	.equ BLOCK_SHIFT, 21		/* 2 MiB blocks at level 2 */
	.equ PSCI_SYSTEM_OFF, 0x84000008

/* x\reg = address of \sym, PC-relative (+-4 GiB) */
.macro adr_l reg, sym
	adrp	\reg, \sym
	add	\reg, \reg, :lo12:\sym
.endm

/* Linux arm64 Image header (Documentation/arch/arm64/booting.rst). */
	.section .text.head, "ax"
	.global _plat_head
_plat_head:
	b	_libkvmplat_entry		/* code0 */
	.long	0				/* code1 */
	.quad	_plat_text_offset		/* from the linker script */
	.quad	_plat_image_size		/* from the linker script */
	.quad	_plat_image_flags	/* LE, 4 KiB pages; bit 3 (anywhere) if relocatable */
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
	adr_l	x0, _plat_head
	adr_l	x1, _plat_image_end
	bl	plat_dcache_clean_inval
	mrs	x0, sctlr_el1
	bic	x0, x0, #SCTLR_M
	bic	x0, x0, #SCTLR_C
	msr	sctlr_el1, x0
	isb
2:
	adr_l	x0, plat_early_vectors
	msr	vbar_el1, x0

	/*
	 * Runs where it was linked? (adrp: where we are; the literal: the link,
	 * as the linker wrote it even where it left a relocation.) If not, a
	 * relocatable image (linked -pie: _plat_rela_start < _plat_rela_end)
	 * applies its relocations once the MMU is on; any other stops here.
	 */
	adr_l	x0, _plat_head
	ldr	x1, =_plat_head
	subs	x24, x0, x1			/* the load offset */
	b.eq	1f
	adr_l	x2, _plat_rela_start
	adr_l	x3, _plat_rela_end
	cmp	x2, x3
	b.eq	plat_wrong_place
	tst	x24, #0xfff			/* adrp needs a page multiple */
	b.ne	plat_wrong_place
1:

	/* The early identity map: the image, the DTB (2 MiB at most), the UART. */
	adr_l	x21, _plat_head
	and	x21, x21, #0xffffffffffe00000	/* from the image's first block */
	adr_l	x22, _plat_image_end
	ldr	x23, =plat_block_normal
1:	mov	x0, x21
	mov	x1, x23
	bl	plat_idmap_block
	add	x21, x21, #(1 << BLOCK_SHIFT)
	cmp	x21, x22
	b.lo	1b
	/* A DTB address that is 0 or unaligned is not mapped; plat_boot reports it. */
	cbz	x19, 3f
	tst	x19, #7
	b.ne	3f
	mov	x0, x19
	mov	x1, x23
	bl	plat_idmap_block
	ldr	x0, =(2 << 20) - 1		/* fdt::MAX_DTB_SIZE - 1 */
	add	x0, x19, x0
	mov	x1, x23
	bl	plat_idmap_block
3:	ldr	x0, =plat_early_uart_kind
	cmp	x0, #2				/* no early UART (vmm-any) */
	b.eq	4f
	ldr	x0, =plat_early_uart_base
	ldr	x1, =plat_block_device
	bl	plat_idmap_block
4:

	ldr	x0, =plat_mair_el1
	msr	mair_el1, x0
	ldr	x0, =plat_tcr_el1
	msr	tcr_el1, x0
	adr_l	x0, plat_idmap
	msr	ttbr0_el1, x0
	isb
	tlbi	vmalle1
	dsb	nsh
	isb
	mrs	x0, sctlr_el1
	ldr	x1, =plat_sctlr_set
	orr	x0, x0, x1
	ldr	x1, =plat_sctlr_clear
	bic	x0, x0, x1
	msr	sctlr_el1, x0
	isb
	/* The first instruction with the MMU on (a mark for `make bench`). */
	.global plat_mmu_on
plat_mmu_on:
	cbz	x24, 2f
	mov	x0, x24
	bl	plat_relocate
	adr_l	x0, plat_load_offset
	str	x24, [x0]
2:	ldr	x0, =plat_early_vectors		/* now by (relocated) link address */
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
	 * .bss, with the MMU and caches on (DC ZVA needs Normal memory), unless
	 * the DTB lies in it (a host that placed it inside the image's footprint):
	 * plat_boot then refuses the DTB before anything uses .bss.
	 */
	ldr	x0, =__bss_start
	ldr	x1, =_plat_bss_end
	cbz	x19, 4f
	tst	x19, #7
	b.ne	4f
	ldr	w2, [x19, #4]			/* totalsize, big-endian */
	rev	w2, w2
	add	x2, x19, x2
	cmp	x2, x0
	b.ls	4f
	cmp	x19, x1
	b.lo	5f
4:	bl	plat_zero_range
5:

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
	.ltorg
	.size _libkvmplat_entry, . - _libkvmplat_entry

/*
 * plat_idmap_block(x0 = address, x1 = block descriptor attributes): maps the
 * 2 MiB block holding x0 at itself in the early tables (plat_idmap), taking
 * level 1 and 2 tables from the pool behind the root. Every descriptor written
 * is cleaned and invalidated to the point of coherency, so the walker sees it
 * whether the MMU is off (these stores bypass the caches) or on; with the MMU on
 * the caller adds DSB ISHST + ISB. Returns x0 = 0, or -1 (pool exhausted, or an
 * address beyond the 48-bit VA space): the block stays unmapped, and a later
 * access to it faults into the early vectors; 1 if the block was mapped
 * already (kept: changing a live entry would need break-before-make).
 * Clobbers x0-x8.
 */
	.global plat_idmap_block
	.type plat_idmap_block, %function
plat_idmap_block:
	lsr	x2, x0, #48
	cbnz	x2, 9f
	adr_l	x3, plat_idmap			/* the level-0 table */
	mov	x4, #39				/* its index shift */
1:	lsr	x5, x0, x4
	and	x5, x5, #511
	add	x6, x3, x5, lsl #3		/* the entry */
	ldr	x7, [x6]
	tbnz	x7, #0, 2f			/* a table already (never a block above L2) */
	adr_l	x8, plat_idmap_used
	ldr	x2, [x8]
	cmp	x2, #IDMAP_TABLES
	b.hs	9f
	add	x7, x2, #1
	str	x7, [x8]
	dc	civac, x8
	adr_l	x7, plat_idmap
	add	x7, x7, x2, lsl #12		/* the next table, zero in the image file */
	orr	x7, x7, #3			/* table descriptor */
	str	x7, [x6]
	dc	civac, x6
2:	and	x3, x7, #0x0000fffffffff000
	sub	x4, x4, #9
	cmp	x4, #BLOCK_SHIFT
	b.ne	1b
	lsr	x5, x0, #BLOCK_SHIFT
	and	x5, x5, #511
	add	x6, x3, x5, lsl #3
	ldr	x2, [x6]
	tbnz	x2, #0, 8f			/* mapped already: left as it is */
	and	x7, x0, #0xffffffffffe00000
	orr	x7, x7, x1
	str	x7, [x6]
	dc	civac, x6
	dsb	sy
	mov	x0, #0
	ret
8:	mov	x0, #1
	ret
9:	mov	x0, #-1
	ret
	.size plat_idmap_block, . - plat_idmap_block

/*
 * plat_relocate(x0 = load offset): applies the image's R_AARCH64_RELATIVE
 * relocations (-pie) with the MMU and caches on: *(offset + x0) = addend + x0,
 * each target checked to lie inside the image. R_AARCH64_NONE is skipped; any
 * other type, or a target outside the image, stops with one line. Clobbers
 * x0-x8.
 */
plat_relocate:
	adr_l	x2, _plat_rela_start
	adr_l	x3, _plat_rela_end
	adr_l	x6, _plat_head
	adr_l	x7, _plat_image_end
	sub	x7, x7, #8
1:	cmp	x2, x3
	b.hs	3f
	ldp	x4, x5, [x2], #16		/* r_offset, r_info */
	ldr	x8, [x2], #8			/* r_addend */
	cbz	x5, 1b				/* R_AARCH64_NONE */
	cmp	x5, #1027			/* R_AARCH64_RELATIVE, no symbol */
	b.ne	.Lbad_reloc
	add	x4, x4, x0
	cmp	x4, x6
	b.lo	.Lbad_reloc
	cmp	x4, x7
	b.hi	.Lbad_reloc
	tst	x4, #7
	b.ne	.Lbad_reloc
	add	x8, x8, x0
	str	x8, [x4]
	b	1b
3:	ret
.Lbad_reloc:
	ldr	x24, =plat_early_uart_base
	ldr	x25, =plat_early_uart_kind
	adr_l	x0, .Lmsg_reloc
	bl	.Lputs
	b	.Lstop
	.size plat_relocate, . - plat_relocate

/*
 * plat_switch_ttbr0(x0 = new root): moves from the early tables to the
 * DTB-derived ones. The two map the same addresses with different block sizes,
 * so the switch is break-before-make: translation is off (no data access) while
 * TTBR0 changes and the TLBs are flushed.
 */
	.global plat_switch_ttbr0
	.type plat_switch_ttbr0, %function
plat_switch_ttbr0:
	dsb	ish				/* the new tables are visible to the walker */
	mrs	x1, sctlr_el1
	bic	x2, x1, #SCTLR_M
	msr	sctlr_el1, x2
	isb
	msr	ttbr0_el1, x0
	isb
	tlbi	vmalle1
	dsb	nsh
	isb
	msr	sctlr_el1, x1
	isb
	ret
	.size plat_switch_ttbr0, . - plat_switch_ttbr0

/*
 * plat_zero_range(x0 = start, x1 = end): zeroes [start, end) (16-byte aligned
 * ends), a cache block per DC ZVA where the CPU allows it. MMU on.
 */
	.global plat_zero_range
	.type plat_zero_range, %function
plat_zero_range:
	mrs	x2, dczid_el0
	tbnz	x2, #4, 3f			/* DC ZVA prohibited */
	and	x2, x2, #0xf
	mov	x3, #4
	lsl	x3, x3, x2			/* block size in bytes */
	sub	x4, x3, #1
1:	tst	x0, x4				/* up to the first block boundary */
	b.eq	2f
	cmp	x0, x1
	b.hs	5f
	stp	xzr, xzr, [x0], #16
	b	1b
2:	add	x5, x0, x3, lsl #3		/* eight blocks per iteration: .bss is */
	cmp	x5, x1				/* large (Unikraft's: ~270 KiB) */
	b.hi	6f
	.rept	7
	dc	zva, x0
	add	x0, x0, x3
	.endr
	dc	zva, x0
	mov	x0, x5
	b	2b
6:	add	x5, x0, x3			/* then one block at a time */
	cmp	x5, x1
	b.hi	3f
	dc	zva, x0
	mov	x0, x5
	b	6b
3:	cmp	x0, x1				/* the tail, or everything */
	b.hs	5f
	stp	xzr, xzr, [x0], #16
	b	3b
5:	ret
	.size plat_zero_range, . - plat_zero_range

/*
 * An image that does not run where it was linked: its absolute addresses
 * (literals, vtables, the vectors) point elsewhere, so nothing but this code
 * can run. One line on the build's early UART, then PSCI SYSTEM_OFF (SMC when
 * entered at EL2, else HVC). x0 = where it runs, x1 = where it was linked.
 */
plat_wrong_place:
	mov	x22, x0
	mov	x23, x1
	ldr	x24, =plat_early_uart_base
	ldr	x25, =plat_early_uart_kind
	ldr	x0, =plat_realm_build
	cbz	x0, 1f
	/*
	 * A realm build: in a realm the UART answers only at its unprotected
	 * alias, which RSI_REALM_CONFIG gives (the granule: the unused last early
	 * table, in .data, so RIPAS RAM). Outside one, KVM answers the SMC with
	 * NOT_SUPPORTED. A realm that gives no sane IPA width stops without the line.
	 */
	ldr	x0, =0xc4000190			/* RSI_VERSION */
	mov	x1, #0x10000			/* 1.0 */
	smc	#0
	cmp	x0, #1
	b.hi	1f				/* not a realm */
	orr	x20, x20, #1			/* PSCI through SMC */
	ldr	x0, =0xc4000196			/* RSI_REALM_CONFIG */
	adr_l	x1, plat_idmap + (IDMAP_TABLES - 1) * 4096
	smc	#0
	cbnz	x0, .Lstop
	adr_l	x1, plat_idmap + (IDMAP_TABLES - 1) * 4096
	ldr	x1, [x1]			/* ipa_width */
	sub	x1, x1, #32
	cmp	x1, #(52 - 32)
	b.hi	.Lstop
	add	x1, x1, #31
	mov	x0, #1
	lsl	x0, x0, x1
	orr	x24, x24, x0
1:	adr_l	x0, .Lmsg_linked
	bl	.Lputs
	mov	x0, x23
	bl	.Lputhex
	adr_l	x0, .Lmsg_runs
	bl	.Lputs
	mov	x0, x22
	bl	.Lputhex
	adr_l	x0, .Lmsg_end
	bl	.Lputs
.Lstop:
	ldr	x0, =PSCI_SYSTEM_OFF
	tbnz	x20, #0, 1f
	hvc	#0
	b	2f
1:	smc	#0
2:	wfi
	b	2b

/* Writes the NUL-terminated string at x0 to the early UART; clobbers x0-x6. */
.Lputs:
	mov	x6, x30
	mov	x5, x0
1:	ldrb	w0, [x5], #1
	cbz	w0, 2f
	bl	.Lputc
	b	1b
2:	ret	x6

/* Writes x0 as 0x + 16 hex digits; clobbers x0-x9. */
.Lputhex:
	mov	x9, x30
	mov	x7, x0
	mov	w0, #'0'
	bl	.Lputc
	mov	w0, #'x'
	bl	.Lputc
	mov	x8, #60
1:	lsr	x0, x7, x8
	and	x0, x0, #0xf
	cmp	x0, #10
	add	x1, x0, #'0'
	add	x0, x0, #('a' - 10)
	csel	x0, x1, x0, lo
	bl	.Lputc
	subs	x8, x8, #4
	b.pl	1b
	ret	x9

/*
 * One byte (w0) to the early UART: ns16550 with byte registers (kind 0: LSR
 * THRE) or PL011 (kind 1: FR TXFF), single loads and stores, at most 4096
 * status polls (the UART is a guess); a UART that never gets ready is given up
 * (x25 = 2): a VM without one costs 4096 exits, not 4096 per byte. Base x24,
 * kind x25; clobbers x1-x4.
 */
.Lputc:
	cmp	x25, #2				/* no early UART: nothing to say it on */
	b.eq	4f
	mov	x1, x24
	mov	x3, #4096
	cbnz	x25, 3f
1:	ldrb	w4, [x1, #5]
	tbnz	w4, #5, 2f
	subs	x3, x3, #1
	b.ne	1b
	b	6f
2:	strb	w0, [x1]
	ret
3:	ldr	w4, [x1, #0x18]
	tbz	w4, #5, 5f
	subs	x3, x3, #1
	b.ne	3b
	b	6f
5:	str	w0, [x1]
4:	ret
6:	mov	x25, #2				/* never ready: no UART there, stop trying */
	ret
	.ltorg

	.section .rodata.plat_boot_msgs, "a"
.Lmsg_linked:
	.asciz	"plat-kvm-arm: fatal: image linked to run at "
.Lmsg_runs:
	.asciz	" was loaded at "
.Lmsg_end:
	.asciz	" and is not relocatable (load it at RAM base + the Image header's text_offset)\r\n"
.Lmsg_reloc:
	.asciz	"plat-kvm-arm: fatal: the image has a relocation this entry does not apply\r\n"

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

/* Clean and invalidate by VA over [x0, x1); clobbers x0, x2, x3. */
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
 * prints ESR/ELR/FAR/SPSR and powers off. Never a silent hang. PC-relative,
 * so they work before the MMU is on too.
 */
.macro early_vector kind
	.balign 0x80
	adr_l	x0, plat_exc_stack_top
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

/* The early tables: root first; zero in the image file, so RIPAS RAM in a realm. */
	.section .data.plat_idmap, "aw"
	.balign 4096
	.global plat_idmap
plat_idmap:
	.space IDMAP_TABLES * 4096
plat_idmap_used:
	.quad	1
	/* Where the image runs minus where it was linked (0 unless relocated). */
	.global plat_load_offset
plat_load_offset:
	.quad	0

	.section .plat_noinit.stacks, "aw", %nobits
	.balign 16
	.space BOOT_STACK_SIZE
	.global plat_boot_stack_top
plat_boot_stack_top:
	.space EXC_STACK_SIZE
	.global plat_exc_stack_top
plat_exc_stack_top:
