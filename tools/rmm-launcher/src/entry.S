// BL33 entry (EL2, MMU off) and EL2 exception vectors of the launcher.

.section .text.boot, "ax"
.global _start
_start:
    msr daifset, #0xf
    adrp x1, __stack_top
    add x1, x1, :lo12:__stack_top
    mov sp, x1
    adrp x1, vectors
    add x1, x1, :lo12:vectors
    msr vbar_el2, x1
    isb
    adrp x1, __bss_start
    add x1, x1, :lo12:__bss_start
    adrp x2, __bss_end
    add x2, x2, :lo12:__bss_end
1:  cmp x1, x2
    b.hs 2f
    str xzr, [x1], #8
    b 1b
2:  bl rust_main
3:  wfe
    b 3b

.macro fault kind
    mov x0, #\kind
    mrs x1, esr_el2
    mrs x2, elr_el2
    mrs x3, far_el2
    bl rust_fault
    b .
.endm

.balign 2048
vectors:
    .balign 0x80
    fault 0
    .balign 0x80
    fault 1
    .balign 0x80
    fault 2
    .balign 0x80
    fault 3
    .balign 0x80
    fault 4
    .balign 0x80
    fault 5
    .balign 0x80
    fault 6
    .balign 0x80
    fault 7
    .balign 0x80
    fault 8
    .balign 0x80
    fault 9
    .balign 0x80
    fault 10
    .balign 0x80
    fault 11
    .balign 0x80
    fault 12
    .balign 0x80
    fault 13
    .balign 0x80
    fault 14
    .balign 0x80
    fault 15
