/*
 * Linker script of a Unikraft 0.17 image built with plat-kvm-arm-rs (the
 * default linker script of the "kvm" platform this repository registers).
 * Written for this project. It reuses the section macros of Unikraft's
 * <uk/plat/common/common.lds.h>, so that every section Unikraft's libraries
 * expect (constructor, init and event tables, TLS, .uk_bootinfo inserted after
 * .data, ...) is where they look for it.
 *
 * Differences from a plain Unikraft layout, all for the Rust entry:
 *  - the Linux arm64 Image header (.text.head) is the first byte of the image,
 *    so the raw binary is directly bootable (no header prepended afterwards);
 *  - .bss is zeroed by the entry code up to _plat_bss_end; the boot stacks and
 *    the boot page-table pool follow in .plat_noinit (NOLOAD, not zeroed),
 *    still before _end, so the KERNEL memory regions cover them;
 *  - arm64_bpt_l3_pt0 names the boot page tables' root (the pool's first
 *    table), for Unikraft's start_mmu on secondary CPUs.
 */
#include <uk/config.h>
#include <uk/arch/limits.h>
#include <uk/plat/common/common.lds.h>

#if CONFIG_KVM_VMM_QEMU || CONFIG_KVM_VMM_ANY	/* ANY: relocated at entry */
#define PLAT_RAM_BASE	0x40000000
#else /* kvmtool, Firecracker */
#define PLAT_RAM_BASE	0x80000000
#endif
/* Where the image starts in RAM: the Image header's text_offset. */
#define PLAT_TEXT_OFFSET 0x100000

OUTPUT_FORMAT("elf64-littleaarch64")
OUTPUT_ARCH(aarch64)
ENTRY(_libkvmplat_entry)

PHDRS
{
	text PT_LOAD FLAGS(PHDRS_PF_RX);
	rodata PT_LOAD FLAGS(PHDRS_PF_R);
	data PT_LOAD;
	tls PT_TLS;
	tls_load PT_LOAD;
	stack PT_GNU_STACK FLAGS(PHDRS_PF_RW);
}

SECTIONS
{
	. = PLAT_RAM_BASE;
	_start_ram_addr = .;
	/* No DTB is placed here: the Linux boot protocol passes it in x0. */
	_dtb = .;
	. = PLAT_RAM_BASE + PLAT_TEXT_OFFSET;

	_base_addr = .;
	_text = .;
	.text :
	{
		KEEP(*(.text.head))
		*(.text.boot)
		*(.text)
		*(.text.*)
	} :text
	. = ALIGN(__PAGE_SIZE);
	_etext = .;

	_rodata = .;
	.rodata :
	{
		*(.rodata)
		*(.rodata.*)
	} :rodata

	/*
	 * Unwind tables and the constructor table, with the symbols Unikraft
	 * looks for, but packed after .rodata instead of each on a new page:
	 * all of it is read-only and in the same segment, so page alignment
	 * would only pad the image (up to two pages).
	 */
	. = ALIGN(8);
	__eh_frame_start = .;
	.eh_frame : { KEEP(*(.eh_frame)) KEEP(*(.eh_frame.*)) }
	__eh_frame_end = .;
	__eh_frame_hdr_start = .;
	.eh_frame_hdr : { KEEP(*(.eh_frame_hdr)) KEEP(*(.eh_frame_hdr.*)) }
	__eh_frame_hdr_end = .;
	__gcc_except_table_start = .;
	.gcc_except_table : { *(.gcc_except_table) *(.gcc_except_table.*) }
	__gcc_except_table_end = .;

	. = ALIGN(8);
	uk_ctortab_start = .;
	.uk_ctortab : { KEEP(*(SORT_BY_NAME(.uk_ctortab[0-9]))) }
	uk_ctortab_end = .;

	INITTAB_SECTION
	EVENTTAB_SECTION

	/*
	 * KVM_VMM_ANY links -pie: the entry applies these relocations when the
	 * image runs elsewhere than linked (empty otherwise).
	 */
	. = ALIGN(8);
	.rela.dyn : {
		_plat_rela_start = .;
		*(.rela.dyn) *(.rela.*)
		_plat_rela_end = .;
	}
	.dynsym : { *(.dynsym) }
	.dynstr : { *(.dynstr) }
	.hash : { *(.hash) }
	.gnu.hash : { *(.gnu.hash) }
	_erodata = .;

	. = ALIGN(0x8);
	_ctors = .;
	.preinit_array :
	{
		PROVIDE_HIDDEN(__preinit_array_start = .);
		KEEP(*(.preinit_array))
		PROVIDE_HIDDEN(__preinit_array_end = .);
	}
	. = ALIGN(0x8);
	.init_array :
	{
		PROVIDE_HIDDEN(__init_array_start = .);
		KEEP(*(SORT_BY_INIT_PRIORITY(.init_array.*) SORT_BY_INIT_PRIORITY(.ctors.*)))
		KEEP(*(.init_array .ctors))
		PROVIDE_HIDDEN(__init_array_end = .);
	}
	_ectors = .;

	TLS_SECTIONS
	DATA_SECTIONS

	/* The entry code zeroes [__bss_start, _plat_bss_end). */
	_plat_bss_end = .;
	.plat_noinit (NOLOAD) :
	{
		. = ALIGN(__PAGE_SIZE);
		arm64_bpt_l3_pt0 = .;
		KEEP(*(.plat_noinit.pt_pool))
		*(.plat_noinit)
		*(.plat_noinit.*)
	} :data	/* else no PT_LOAD has it: no KERNEL region, unmapped with PAGING */
	. = ALIGN(__PAGE_SIZE);
	_end = .;

	_plat_image_start = _text;
	_plat_image_end = _end;
	_plat_text_offset = _text - _start_ram_addr;
	_plat_image_size = _end - _text;
	/* Image header flags: LE, 4 KiB pages; bit 3 (anywhere) when relocatable. */
	_plat_image_flags = ABSOLUTE(_plat_rela_end > _plat_rela_start ? 0xa : 0x2);

	.comment 0 : { *(.comment) }
	DEBUG_SYMBOLS

	DISCARDS
}
