#include <unistd.h>
int main(int argc, char **argv){ if (argc < 2) return 2; execl(argv[1], "nolibc", (char*)0); return 1; }
