# hello: the smallest guest. write(1, msg, len); exit_group(0).
.section .text
_start:
    mov eax, 1              # SYS_write
    mov edi, 1              # stdout
    mov esi, msg
    mov edx, msg_end - msg
    syscall
    mov eax, 231            # SYS_exit_group
    xor edi, edi
    syscall

.section .rodata
msg: .ascii "Hello from a guest at CPL 3, under genuine 4-level paging.\n"
msg_end:
