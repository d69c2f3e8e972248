# sections: .rodata is readable, .data starts with its initial values and is writable,
# .bss (three pages) reads as zero. Prints one line per check; exit status = failures.
.section .text
_start:
    xor r12d, r12d                  # failures
    # .rodata: the first quad must be 0x1122334455667788
    mov rax, qword ptr [magic]
    movabs rbx, 0x1122334455667788
    cmp rax, rbx
    je rodata_ok
    inc r12d
rodata_ok:
    mov esi, line_rodata
    mov edx, line_data - line_rodata
    call say
    # .data: counter starts at 41; add one and read it back
    mov rax, qword ptr [counter]
    inc rax
    mov qword ptr [counter], rax
    cmp qword ptr [counter], 42
    je data_ok
    inc r12d
data_ok:
    mov esi, line_data
    mov edx, line_bss - line_data
    call say
    # .bss: every byte of 3 pages is zero; then write the last byte of each page
    mov edi, zeros
    mov ecx, 12288
    xor eax, eax
scan:
    or al, byte ptr [rdi]
    inc rdi
    dec ecx
    jnz scan
    test al, al
    jz bss_ok
    inc r12d
bss_ok:
    mov byte ptr [zeros + 4095], 1
    mov byte ptr [zeros + 8191], 2
    mov byte ptr [zeros + 12287], 3
    movzx eax, byte ptr [zeros + 8191]
    cmp eax, 2
    je bss_write_ok
    inc r12d
bss_write_ok:
    mov esi, line_bss
    mov edx, lines_end - line_bss
    call say
    mov eax, 231
    mov edi, r12d
    syscall

say:                                # write(1, rsi, rdx)
    mov eax, 1
    mov edi, 1
    syscall
    ret

.section .rodata
magic: .quad 0x1122334455667788
line_rodata: .ascii "rodata: ok\n"
line_data: .ascii "data: ok\n"
line_bss: .ascii "bss: ok\n"
lines_end:

.section .data
counter: .quad 41

.section .bss
zeros: .zero 12288
