#define _GNU_SOURCE
/* What the kernel told the dynamic linker and libc at start, as far as it is the same on
 * every run: AT_SECURE, AT_PAGESZ, AT_EXECFN, that AT_ENTRY is this program's _start and
 * AT_PHDR its program headers, that AT_BASE (ld.so) lies in a mapping of the interpreter,
 * and what the environment variables ld.so honours did. */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern void _start(void);
extern const ElfW(Ehdr) __ehdr_start;

static int phdr_of_main(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (info->dlpi_name[0] == '\0') /* the main program comes first, without a name */
        *(const void **)data = info->dlpi_phdr;
    return 1;
}

int main(void) {
    const void *phdr = NULL;
    dl_iterate_phdr(phdr_of_main, &phdr);
    printf("AT_SECURE %lu\n", getauxval(AT_SECURE));
    printf("AT_PAGESZ %lu\n", getauxval(AT_PAGESZ));
    printf("AT_EXECFN %s\n", (const char *)getauxval(AT_EXECFN));
    printf("AT_ENTRY is _start: %s\n", getauxval(AT_ENTRY) == (unsigned long)_start ? "yes" : "no");
    printf("AT_PHDR is ours: %s\n", getauxval(AT_PHDR) == (unsigned long)phdr ? "yes" : "no");
    printf("AT_PHNUM matches: %s\n", getauxval(AT_PHNUM) == __ehdr_start.e_phnum ? "yes" : "no");
    Dl_info info;
    int found = dladdr((void *)getauxval(AT_BASE), &info);
    printf("AT_BASE is in %s\n", found && strstr(info.dli_fname, "ld-linux") ? "ld-linux" : "something else");
    printf("AT_RANDOM present: %s\n", getauxval(AT_RANDOM) ? "yes" : "no");
    printf("AT_MINSIGSTKSZ present: %s\n", getauxval(AT_MINSIGSTKSZ) ? "yes" : "no");
    printf("LD_BIND_NOW %s\n", getenv("LD_BIND_NOW") ? getenv("LD_BIND_NOW") : "(unset)");
    return 0;
}
