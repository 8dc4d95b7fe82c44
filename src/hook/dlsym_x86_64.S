/* dlsym_x86_64.S - the exported dlsym: ask gp__dlsym_hook, else tail-jump
 * to the real dlsym with the caller's return address untouched (see
 * dlsym.c for why this cannot be C). */
	.text
	.globl	dlsym
	.type	dlsym, @function
dlsym:
	.cfi_startproc
#ifdef __CET__
	endbr64
#endif
	pushq	%rdi
	.cfi_adjust_cfa_offset 8
	pushq	%rsi
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp		/* keep the stack 16-byte aligned */
	.cfi_adjust_cfa_offset 8
	call	gp__dlsym_hook
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%rsi
	.cfi_adjust_cfa_offset -8
	popq	%rdi
	.cfi_adjust_cfa_offset -8
	testq	%rax, %rax
	jz	1f
	ret
1:	jmp	*gp__real_dlsym(%rip)
	.cfi_endproc
	.size	dlsym, .-dlsym
	.section .note.GNU-stack,"",@progbits
