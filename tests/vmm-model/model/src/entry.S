// EL2 entry points and exception vectors of the model.

.equ STACK_SIZE, 0x10000

.section .text.boot, "ax"
.global _start
_start:
    msr daifset, #0xf
    mov x19, #0                 // CPU index 0: the boot CPU
    b 1f
.global secondary_entry
secondary_entry:                // PSCI CPU_ON from QEMU, x0 = CPU index
    msr daifset, #0xf
    mov x19, x0
1:
    adrp x1, __stack_top
    add x1, x1, :lo12:__stack_top
    mov x2, #STACK_SIZE
    msub x1, x2, x19, x1
    mov sp, x1
    adrp x1, vectors
    add x1, x1, :lo12:vectors
    msr vbar_el2, x1
    isb
    cbnz x19, 3f
    adrp x1, __bss_start
    add x1, x1, :lo12:__bss_start
    adrp x2, __bss_end
    add x2, x2, :lo12:__bss_end
2:  cmp x1, x2
    b.hs 3f
    str xzr, [x1], #8
    b 2b
3:  mrs x1, CurrentEL
    mov x0, x19
    bl rust_entry
4:  wfe
    b 4b

// Save the guest's x0..x30 into the VCpu that TPIDR_EL2 points to.
.macro save_guest kind
    stp x0, x1, [sp, #-16]!
    mrs x0, tpidr_el2
    stp x2, x3, [x0, #16]
    stp x4, x5, [x0, #32]
    stp x6, x7, [x0, #48]
    stp x8, x9, [x0, #64]
    stp x10, x11, [x0, #80]
    stp x12, x13, [x0, #96]
    stp x14, x15, [x0, #112]
    stp x16, x17, [x0, #128]
    stp x18, x19, [x0, #144]
    stp x20, x21, [x0, #160]
    stp x22, x23, [x0, #176]
    stp x24, x25, [x0, #192]
    stp x26, x27, [x0, #208]
    stp x28, x29, [x0, #224]
    str x30, [x0, #240]
    ldp x2, x3, [sp], #16
    stp x2, x3, [x0, #0]
    mov x1, #\kind
    bl rust_trap
    mrs x0, tpidr_el2
    b guest_resume
.endm

.macro model_fault kind
    mov x0, #\kind
    mov x1, sp
    bl rust_model_fault
    b .
.endm

// x0 = &VCpu: load its registers and enter the guest.
.global guest_resume
guest_resume:
    ldp x2, x3, [x0, #16]
    ldp x4, x5, [x0, #32]
    ldp x6, x7, [x0, #48]
    ldp x8, x9, [x0, #64]
    ldp x10, x11, [x0, #80]
    ldp x12, x13, [x0, #96]
    ldp x14, x15, [x0, #112]
    ldp x16, x17, [x0, #128]
    ldp x18, x19, [x0, #144]
    ldp x20, x21, [x0, #160]
    ldp x22, x23, [x0, #176]
    ldp x24, x25, [x0, #192]
    ldp x26, x27, [x0, #208]
    ldp x28, x29, [x0, #224]
    ldr x30, [x0, #240]
    ldp x0, x1, [x0, #0]
    eret

.balign 2048
.global vectors
vectors:
    // current EL with SP_EL0
    .balign 0x80
    model_fault 0
    .balign 0x80
    model_fault 1
    .balign 0x80
    model_fault 2
    .balign 0x80
    model_fault 3
    // current EL with SP_ELx
    .balign 0x80
    model_fault 4
    .balign 0x80
    model_fault 5
    .balign 0x80
    model_fault 6
    .balign 0x80
    model_fault 7
    // lower EL, AArch64
    .balign 0x80
    save_guest 0
    .balign 0x80
    save_guest 1
    .balign 0x80
    save_guest 2
    .balign 0x80
    save_guest 3
    // lower EL, AArch32
    .balign 0x80
    model_fault 12
    .balign 0x80
    model_fault 13
    .balign 0x80
    model_fault 14
    .balign 0x80
    model_fault 15
