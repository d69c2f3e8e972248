/* stackgrow DEPTH: recurse DEPTH times with a 1 KiB frame each, so the stack grows down
 * page by page (each new page is a fault just below the stack region). */
#include "sys.h"

static long descend(long depth) {
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[1023] = (char)(depth >> 8);
    if (depth == 0) return 0;
    return descend(depth - 1) + frame[0] + frame[1023];
}

int main(int argc, char **argv, char **envp) {
    long depth = argc > 1 ? atol(argv[1]) : 4000;
    long sum = descend(depth);
    put("depth "); put_num(depth); put(" sum "); put_num(sum); put("\n");
    return 0;
}
