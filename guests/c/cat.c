/* cat: copy stdin to stdout in 4 KiB reads (a bss buffer) until end of file. */
#include "sys.h"

static char buf[4096];

int main(int argc, char **argv, char **envp) {
    long n, total = 0;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        for (long done = 0; done < n;) {
            long w = write(1, buf + done, n - done);
            if (w <= 0) return 2;
            done += w;
        }
        total += n;
    }
    return n < 0 ? 1 : 0;
}
