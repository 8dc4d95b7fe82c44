/* dlopen_x86_64.S - the exported dlopen: clear RTLD_DEEPBIND from the
 * flags and tail-jump to the real dlopen with the caller's return address
 * untouched (see dlopen.c for why this cannot be C). */
	.text
	.globl	dlopen
	.type	dlopen, @function
dlopen:
	.cfi_startproc
#ifdef __CET__
	endbr64
#endif
	testl	$0x8, %esi		/* RTLD_DEEPBIND */
	jnz	1f
	movq	gp__real_dlopen(%rip), %rax
	testq	%rax, %rax
	jz	1f
	jmp	*%rax
	/* The slow path: gp__dlopen_flags(file, flags) resolves the real
	 * dlopen and returns the flags to pass on. */
1:	pushq	%rdi			/* also aligns the stack to 16 */
	.cfi_adjust_cfa_offset 8
	call	gp__dlopen_flags
	popq	%rdi
	.cfi_adjust_cfa_offset -8
	movl	%eax, %esi
	jmp	*gp__real_dlopen(%rip)
	.cfi_endproc
	.size	dlopen, .-dlopen
	.section .note.GNU-stack,"",@progbits
