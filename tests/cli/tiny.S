/* The smallest program: one code page, one stack page, exit(0). Its need is the least
   --max-resident (sandbox.commands.MIN_RESIDENT). */
.globl _start
_start:
    push $0
    mov $60, %eax
    xor %edi, %edi
    syscall
