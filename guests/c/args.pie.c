/* args: print argc, each argument, and each environment string; built as ET_EXEC and as
 * a static-PIE (args-pie), which the loader places at a bias. */
#include "sys.h"

int main(int argc, char **argv, char **envp) {
    put("argc "); put_num(argc); put("\n");
    for (int i = 1; i < argc; i++) { put("argv["); put_num(i); put("] "); put(argv[i]); put("\n"); }
    for (char **e = envp; *e; e++) { put("env "); put(*e); put("\n"); }
    puts_fd(2, "args: done\n");
    return argc;
}
