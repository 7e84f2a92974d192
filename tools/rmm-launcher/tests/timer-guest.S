// A realm test guest for interrupt delivery: it programs the GICv3 the
// kvmtool realm DTB describes (distributor and redistributor through the
// unprotected alias, 1 vCPU, 64 MiB: IPA width 33, shared bit 1 << 32), enables
// the EL1 virtual timer PPI 27, arms the timer for 10 ms and waits in WFI.
// The IRQ handler acknowledges the interrupt (ICC_IAR1_EL1), stops the timer
// and writes EOI. It then prints the result on the 16550 and calls PSCI
// SYSTEM_OFF (SYSTEM_RESET on a wrong INTID). Loaded as an arm64 Image at
// RAM + 0x80000 (0x80080000).

.equ SHARED,    0x100000000
.equ UART,      (SHARED + 0x01000000)
.equ GICD,      (SHARED + 0x3fff0000)
.equ GICR,      (SHARED + 0x3ffd0000)
.equ GICR_SGI,  (GICR + 0x10000)

.section .text
.global _head
_head:
    b start                     // code0
    .long 0                     // code1
    .quad 0x80000               // text_offset
    .quad _end - _head          // image_size
    .quad 0x2                   // flags: 4 KiB pages
    .quad 0, 0, 0               // res2-4
    .ascii "ARM\x64"            // magic
    .long 0                     // res5

start:
    adr x1, stack_top
    mov sp, x1
    adr x1, vectors
    msr vbar_el1, x1
    isb
    adr x0, msg_start
    bl puts

    // Distributor: ARE | EnableGrp1 (single security state).
    ldr x1, =GICD
    mov w2, #0x12
    str w2, [x1]
    // Redistributor 0: wake up, PPI 27 in group 1, priority 0xa0, enabled.
    ldr x1, =GICR
    str wzr, [x1, #0x14]
    ldr x1, =GICR_SGI
    mov w2, #-1
    str w2, [x1, #0x80]
    mov w2, #0xa0
    strb w2, [x1, #0x41b]
    mov w2, #(1 << 27)
    str w2, [x1, #0x100]
    // CPU interface (virtual in a realm).
    mov x2, #0xff
    msr icc_pmr_el1, x2
    mov x2, #1
    msr icc_igrpen1_el1, x2
    isb

    // Virtual timer: 10 ms.
    mrs x2, cntfrq_el0
    mov x3, #100
    udiv x2, x2, x3
    msr cntv_tval_el0, x2
    mov x2, #1
    msr cntv_ctl_el0, x2
    isb
    msr daifclr, #2
wait:
    adr x1, got_intid
    ldr w2, [x1]
    cbnz w2, done
    wfi
    b wait

done:
    msr daifset, #2
    cmp w2, #27
    b.ne bad
    adr x0, msg_ok
    bl puts
    ldr x0, =0x84000008         // PSCI SYSTEM_OFF
    smc #0
    b .
bad:
    adr x0, msg_bad
    bl puts
    ldr x0, =0x84000009         // PSCI SYSTEM_RESET
    smc #0
    b .

// x0: NUL-terminated string to UART0 (THR at the alias).
puts:
    ldr x1, =UART
1:  ldrb w2, [x0], #1
    cbz w2, 2f
    strb w2, [x1]
    b 1b
2:  ret

irq:
    mrs x0, icc_iar1_el1
    and w0, w0, #0xffffff
    cmp w0, #1020
    b.hs 1f
    msr cntv_ctl_el0, xzr       // stop the timer (its output deasserts)
    adr x1, got_intid
    str w0, [x1]
    msr icc_eoir1_el1, x0
    isb
1:  eret

unexpected:
    adr x0, msg_exc
    bl puts
    ldr x0, =0x84000009
    smc #0
    b .

.balign 2048
vectors:
    .rept 5
    .balign 0x80
    b unexpected
    .endr
    .balign 0x80                // current EL, SPx, IRQ
    b irq
    .rept 10
    .balign 0x80
    b unexpected
    .endr

.balign 8
msg_start: .asciz "timer-guest: waiting for the virtual timer (PPI 27)\n"
msg_ok:    .asciz "timer-guest: IRQ intid=27 from the virtual timer\n"
msg_bad:   .asciz "timer-guest: unexpected INTID\n"
msg_exc:   .asciz "timer-guest: unexpected exception\n"
.balign 4
got_intid: .long 0
.ltorg

.section .bss
.balign 16
    .space 4096
stack_top:
.global _end
_end:
