/* dlsym_aarch64.S - the exported dlsym: ask gp__dlsym_hook, else branch to
 * the real dlsym with the caller's link register restored (see dlsym.c). */
	.text
	.globl	dlsym
	.type	dlsym, %function
dlsym:
	.cfi_startproc
	stp	x29, x30, [sp, #-32]!
	.cfi_def_cfa_offset 32
	.cfi_offset 29, -32
	.cfi_offset 30, -24
	mov	x29, sp
	stp	x0, x1, [sp, #16]
	bl	gp__dlsym_hook
	cbz	x0, 1f
	ldp	x29, x30, [sp], #32
	.cfi_remember_state
	.cfi_def_cfa_offset 0
	ret
1:	.cfi_restore_state
	ldp	x0, x1, [sp, #16]
	ldp	x29, x30, [sp], #32
	.cfi_def_cfa_offset 0
	adrp	x16, gp__real_dlsym
	ldr	x16, [x16, #:lo12:gp__real_dlsym]
	br	x16
	.cfi_endproc
	.size	dlsym, .-dlsym
	.section .note.GNU-stack,"",%progbits
