/* A shared object the dlopen guest loads at run time: a function, initialised data, and a
 * thread-local variable (dynamic TLS, allocated by ld.so when the object arrives). */
#include <stdio.h>

static __thread int calls;
int plugin_base = 40;

__attribute__((constructor)) static void loaded(void) { puts("plugin: constructor ran"); }

int plugin_answer(int x) {
    calls++;
    return plugin_base + x + calls - 1;
}

int plugin_calls(void) { return calls; }
