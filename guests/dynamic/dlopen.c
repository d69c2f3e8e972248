/* dlopen/dlsym of a shared library named on the command line, as plugin hosts do. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dlopen LIBRARY\n");
        return 2;
    }
    void *handle = dlopen(argv[1], RTLD_NOW);
    if (!handle) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    int (*answer)(int) = (int (*)(int))dlsym(handle, "plugin_answer");
    int (*calls)(void) = (int (*)(void))dlsym(handle, "plugin_calls");
    int *base = (int *)dlsym(handle, "plugin_base");
    if (!answer || !calls || !base) {
        printf("dlsym failed: %s\n", dlerror());
        return 1;
    }
    printf("answer %d\n", answer(2));
    *base = 100;
    printf("answer %d\n", answer(2));
    printf("calls %d\n", calls());
    printf("missing symbol: %s\n", dlsym(handle, "no_such_symbol") ? "found?" : "not found");
    printf("dlclose %d\n", dlclose(handle));
    printf("missing library: %s\n", dlopen("libno-such-library.so", RTLD_NOW) ? "loaded?" : "not found");
    return 0;
}
