"""x86-64 facts the machine and the kernel name: control-register and EFER bits, the
exception vectors, the page-fault error code's bits (Intel SDM vol. 3), the x87 and SSE
defaults at reset."""

# Control-register and EFER bits, Intel SDM vol. 3 §2.5 and §2.2.1.
CR0_PE = 1 << 0  # protected mode
CR0_MP = 1 << 1  # monitor coprocessor (x87/SSE with TS)
CR0_NE = 1 << 5  # native x87 error reporting
CR0_WP = 1 << 16  # read-only pages bind at CPL 0 too
CR0_PG = 1 << 31  # paging
CR4_PAE = 1 << 5  # physical address extension (required by long mode)
CR4_OSFXSR = 1 << 9  # FXSAVE/FXRSTOR and SSE enabled
CR4_OSXMMEXCPT = 1 << 10  # unmasked SIMD floating-point exceptions
FPU_CONTROL_DEFAULT = 0x037F  # 64-bit precision, round to nearest, all exceptions masked
FPU_TAGS_EMPTY = 0xFFFF
MXCSR_DEFAULT = 0x1F80  # all SIMD exceptions masked, round to nearest
MSR_EFER = 0xC000_0080
EFER_SCE = 1 << 0  # SYSCALL/SYSRET
EFER_LME = 1 << 8  # long mode enable
EFER_LMA = 1 << 10  # long mode active
EFER_NXE = 1 << 11  # execute-disable bit in page entries

# x86 exception vectors, Intel SDM vol. 3 §6.3.1, table 6-1.
EXC_DE = 0  # divide error
EXC_DB = 1  # debug
EXC_BP = 3  # breakpoint (int3)
EXC_UD = 6  # invalid opcode
EXC_DF = 8  # double fault
EXC_GP = 13  # general protection
EXC_PF = 14  # page fault
# #PF error code bits, Intel SDM vol. 3 §4.7.
PF_PRESENT = 1 << 0  # 1: protection violation; 0: not-present page
PF_WRITE = 1 << 1
PF_USER = 1 << 2
PF_RSVD = 1 << 3
PF_INSTR = 1 << 4
