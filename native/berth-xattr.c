/*
 * berth-xattr ROOT: sets extended attributes on files under ROOT with lsetxattr(2), for the
 * layer applier (Node.js has no xattr call). One process per layer, not one per attribute.
 *
 * Input on stdin, records of three NUL-terminated fields: the path relative to ROOT, the
 * attribute name, the value in hex. The path's directory is resolved inside ROOT
 * (openat2 RESOLVE_IN_ROOT: "..", symlinks cannot lead out), its last component is not
 * followed (a symlink gets the attribute itself).
 * Output on stdout, one line per record that failed: "INDEX ERRNO_NUMBER message".
 * Exit status 0 when the input was read (failures are reported per record), 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "openat2.h"

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: berth-xattr ROOT < records\n"); return 2; }
  int root = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) { fprintf(stderr, "berth-xattr: open %s: %s\n", argv[1], strerror(errno)); return 2; }
  /* The whole input at once: a layer's attributes are small. */
  size_t cap = 1 << 16, len = 0;
  char *in = malloc(cap);
  for (;;) {
    if (!in) { fprintf(stderr, "berth-xattr: out of memory\n"); return 2; }
    if (len == cap) in = realloc(in, cap *= 2);
    if (!in) continue;
    ssize_t n = read(0, in + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { fprintf(stderr, "berth-xattr: read: %s\n", strerror(errno)); return 2; }
    if (n == 0) break;
    len += (size_t)n;
  }
  size_t off = 0;
  for (long index = 0; off < len; index++) {
    char *f[3];
    for (int i = 0; i < 3; i++) {
      char *end = memchr(in + off, 0, len - off);
      if (!end) { fprintf(stderr, "berth-xattr: record %ld is truncated\n", index); return 2; }
      f[i] = in + off;
      off = (size_t)(end - in) + 1;
    }
    size_t hexlen = strlen(f[2]);
    if (hexlen % 2) { printf("%ld %d value is not hex\n", index, EINVAL); continue; }
    unsigned char *value = (unsigned char *)f[2]; /* decoded in place */
    int bad = 0;
    for (size_t i = 0; i < hexlen / 2; i++) {
      int hi = hexval(f[2][2 * i]), lo = hexval(f[2][2 * i + 1]);
      if (hi < 0 || lo < 0) { bad = 1; break; }
      value[i] = (unsigned char)(hi << 4 | lo);
    }
    if (bad) { printf("%ld %d value is not hex\n", index, EINVAL); continue; }
    /* Split the path into its directory (resolved in the root) and last component. */
    char *rel = f[0], *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    int dir = root;
    if (slash) {
      *slash = 0;
      struct berth_open_how how = { O_PATH | O_DIRECTORY | O_CLOEXEC, 0, BERTH_RESOLVE_IN_ROOT | BERTH_RESOLVE_NO_MAGICLINKS };
      dir = berth_openat2(root, rel, &how);
      if (dir < 0) { printf("%ld %d %s\n", index, errno, strerror(errno)); continue; }
    }
    if (!*name || strcmp(name, "..") == 0) name = ".";
    char path[4200];
    snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dir, name);
    if (lsetxattr(path, f[1], value, hexlen / 2, 0) < 0) printf("%ld %d %s\n", index, errno, strerror(errno));
    if (dir != root) close(dir);
  }
  return 0;
}
