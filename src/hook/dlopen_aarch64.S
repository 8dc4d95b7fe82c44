/* dlopen_aarch64.S - the exported dlopen: clear RTLD_DEEPBIND from the
 * flags and branch to the real dlopen with the caller's link register
 * restored (see dlopen.c for why this cannot be C). */
	.text
	.globl	dlopen
	.type	dlopen, %function
dlopen:
	.cfi_startproc
	tbnz	w1, #3, 1f		/* RTLD_DEEPBIND (0x8) */
	adrp	x16, gp__real_dlopen
	ldr	x16, [x16, #:lo12:gp__real_dlopen]
	cbz	x16, 1f
	br	x16
	/* The slow path: gp__dlopen_flags(file, flags) resolves the real
	 * dlopen and returns the flags to pass on. */
1:	stp	x29, x30, [sp, #-32]!
	.cfi_def_cfa_offset 32
	.cfi_offset 29, -32
	.cfi_offset 30, -24
	mov	x29, sp
	str	x0, [sp, #16]
	bl	gp__dlopen_flags
	mov	w1, w0
	ldr	x0, [sp, #16]
	ldp	x29, x30, [sp], #32
	.cfi_def_cfa_offset 0
	.cfi_restore 29
	.cfi_restore 30
	adrp	x16, gp__real_dlopen
	ldr	x16, [x16, #:lo12:gp__real_dlopen]
	br	x16
	.cfi_endproc
	.size	dlopen, .-dlopen
	.section .note.GNU-stack,"",%progbits
