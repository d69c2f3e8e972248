/* prctl(2) with the options and argument shapes strace decodes: names, signals, strings
 * read at entry and at exit, ints written, bad pointers, an unknown option. Every call
 * passes all five arguments (glibc's prctl is variadic: the rest would be stray registers). */
#include <signal.h>
#include <sys/prctl.h>

int main(void) {
    char name[16];
    int value;
    prctl(PR_SET_NAME, "hello", 0, 0, 0);
    prctl(PR_SET_NAME, "a-name-longer-than-fifteen", 0, 0, 0);
    prctl(PR_GET_NAME, name, 0, 0, 0);
    prctl(PR_GET_NAME, 8, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, 200, 0, 0, 0);
    prctl(PR_GET_PDEATHSIG, &value, 0, 0, 0);
    prctl(PR_GET_PDEATHSIG, 8, 0, 0, 0);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 7, 0, 0, 0);
    prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0);
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
    prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    prctl(PR_CAPBSET_READ, 1, 0, 0, 0);
    prctl(PR_CAPBSET_READ, 77, 0, 0, 0);
    prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
    prctl(PR_GET_TID_ADDRESS, 0, 0, 0, 0);
    prctl(999, 1, 2, 0, 0);
    return 0;
}
