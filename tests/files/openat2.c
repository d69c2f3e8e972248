/* openat2(2): strict flags, struct-size rules and the RESOLVE_* walk restrictions, printed
 * for a tree made by the program itself (argv[1], writable):
 *   d/sub/  d/file  d/up -> ../outside  d/abs -> /etc/hostname  d/rel -> sub  outside */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int dirfd_;
static void try(const char *what, const char *path, unsigned long long flags, unsigned long long mode,
                unsigned long long resolve, size_t size) {
  char buf[64] = {0}; struct open_how how = {flags, mode, resolve};
  memcpy(buf, &how, sizeof how);
  long fd = syscall(SYS_openat2, dirfd_, path, buf, size);
  printf("%-40s %s\n", what, fd >= 0 ? "ok" : strerrorname_np(errno));
  if (fd >= 0) close(fd);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  chdir(argv[1]);
  mkdir("d", 0755); mkdir("d/sub", 0755); close(open("d/file", O_CREAT | O_WRONLY, 0644));
  close(open("outside", O_CREAT | O_WRONLY, 0644));
  symlink("../outside", "d/up"); symlink("/etc/hostname", "d/abs"); symlink("sub", "d/rel");
  dirfd_ = open("d", O_RDONLY | O_DIRECTORY);
  try("plain", "file", O_RDONLY, 0, 0, sizeof(struct open_how));
  try("size too small", "file", O_RDONLY, 0, 0, 16);
  try("size too big", "file", O_RDONLY, 0, 0, 8192);
  try("bigger struct, zero tail", "file", O_RDONLY, 0, 0, 40);
  try("unknown flag", "file", 1ULL << 40, 0, 0, sizeof(struct open_how));
  try("mode without O_CREAT", "file", O_RDONLY, 0644, 0, sizeof(struct open_how));
  try("bad mode", "new", O_CREAT | O_WRONLY, 010000, 0, sizeof(struct open_how));
  try("O_PATH with O_RDWR", "file", O_PATH | O_RDWR, 0, 0, sizeof(struct open_how));
  try("unknown resolve", "file", O_RDONLY, 0, 0x40, sizeof(struct open_how));
  try("beneath and in_root", "file", O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT, sizeof(struct open_how));
  try("cached create", "new", O_CREAT | O_WRONLY, 0644, RESOLVE_CACHED, sizeof(struct open_how));
  try("beneath: file", "file", O_RDONLY, 0, RESOLVE_BENEATH, sizeof(struct open_how));
  try("beneath: sub/../file", "sub/../file", O_RDONLY, 0, RESOLVE_BENEATH, sizeof(struct open_how));
  try("beneath: ../outside", "../outside", O_RDONLY, 0, RESOLVE_BENEATH, sizeof(struct open_how));
  try("beneath: up link", "up", O_RDONLY, 0, RESOLVE_BENEATH, sizeof(struct open_how));
  try("beneath: abs link", "abs", O_RDONLY, 0, RESOLVE_BENEATH, sizeof(struct open_how));
  try("beneath: absolute path", "/etc/hostname", O_RDONLY, 0, RESOLVE_BENEATH, sizeof(struct open_how));
  try("beneath: rel link", "rel", O_RDONLY | O_DIRECTORY, 0, RESOLVE_BENEATH, sizeof(struct open_how));
  try("in_root: /file", "/file", O_RDONLY, 0, RESOLVE_IN_ROOT, sizeof(struct open_how));
  try("in_root: ../../file", "../../file", O_RDONLY, 0, RESOLVE_IN_ROOT, sizeof(struct open_how));
  try("in_root: up link (../outside)", "up", O_RDONLY, 0, RESOLVE_IN_ROOT, sizeof(struct open_how));
  try("in_root: abs link (/etc/hostname)", "abs", O_RDONLY, 0, RESOLVE_IN_ROOT, sizeof(struct open_how));
  try("no_symlinks: rel", "rel", O_RDONLY | O_DIRECTORY, 0, RESOLVE_NO_SYMLINKS, sizeof(struct open_how));
  try("no_symlinks: nofollow path", "rel", O_PATH | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS, sizeof(struct open_how));
  try("no_symlinks: plain", "sub", O_RDONLY, 0, RESOLVE_NO_SYMLINKS, sizeof(struct open_how));
  try("no_magiclinks: /proc/self/fd/0", "/proc/self/fd/0", O_RDONLY, 0, RESOLVE_NO_MAGICLINKS, sizeof(struct open_how));
  try("magiclinks: /proc/self/cwd", "/proc/self/cwd", O_RDONLY, 0, 0, sizeof(struct open_how));
  try("no_xdev: /proc/self/status", "/proc/self/status", O_RDONLY, 0, RESOLVE_NO_XDEV, sizeof(struct open_how));
  try("no_xdev: file", "file", O_RDONLY, 0, RESOLVE_NO_XDEV, sizeof(struct open_how));
  try("create beneath", "sub/new", O_CREAT | O_WRONLY, 0600, RESOLVE_BENEATH, sizeof(struct open_how));
  try("create beneath escaping", "../new", O_CREAT | O_WRONLY, 0600, RESOLVE_BENEATH, sizeof(struct open_how));
  return 0;
}
