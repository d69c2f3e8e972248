# farjump: reach code on pages never touched before by an indirect jump, an indirect call
# and a return. In Unicorn such a fetch fault arrives as #DF (its first #PF is lost inside
# the TB-lookup helper); the sandbox must still treat it as the page fault it is.
.section .text
_start:
    mov eax, far_one
    jmp rax
    .zero 8192
far_one:
    mov eax, far_two
    call rax                # pushes a return address on this page
    mov eax, 1
    mov edi, 1
    mov esi, msg
    mov edx, msg_end - msg
    syscall
    mov eax, 231
    mov edi, 7
    syscall
    .zero 8192
far_two:
    ret

.section .rodata
msg: .ascii "reached three fresh code pages\n"
msg_end:
