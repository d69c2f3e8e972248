/* chroot(2) as root: paths, "..", absolute symlinks and getcwd are the new root's; the cwd
 * stays where it was until chdir; children inherit it; a non-directory is ENOTDIR. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
static void show(const char *what, int r) { printf("%-32s %d %s\n", what, r, r < 0 ? strerrorname_np(errno) : ""); }
static void cat(const char *path) {
  char buf[64] = {0}; int fd = open(path, O_RDONLY);
  if (fd < 0) { printf("%-32s %s\n", path, strerrorname_np(errno)); return; }
  read(fd, buf, sizeof buf - 1); close(fd); printf("%-32s %s", path, buf);
}
int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  chdir(argv[1]);
  mkdir("jail", 0755); mkdir("jail/sub", 0755); mkdir("jail/etc", 0755);
  int fd = open("jail/etc/motd", O_CREAT | O_WRONLY | O_TRUNC, 0644); write(fd, "inside\n", 7); close(fd);
  fd = open("outside.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644); write(fd, "outside\n", 8); close(fd);
  symlink("/etc/motd", "jail/sub/abs");
  show("chroot a file", chroot("outside.txt"));
  show("chroot missing", chroot("nowhere"));
  show("chroot jail", chroot("jail"));
  char cwd[256]; printf("getcwd before chdir: %s\n", getcwd(cwd, sizeof cwd) ? cwd : strerrorname_np(errno));
  cat("outside.txt");  /* the cwd is still outside: relative paths still reach there */
  show("chdir /", chdir("/"));
  printf("getcwd: %s\n", getcwd(cwd, sizeof cwd));
  cat("/etc/motd");
  cat("/../../etc/motd");
  cat("/sub/abs");
  show("chdir sub", chdir("sub"));
  printf("getcwd: %s\n", getcwd(cwd, sizeof cwd));
  cat("../../../etc/motd");
  pid_t c = fork();
  if (c == 0) { cat("/etc/motd"); _exit(0); }
  waitpid(c, 0, 0);
  return 0;
}
