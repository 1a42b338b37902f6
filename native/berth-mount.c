/*
 * berth-mount: the engine's overlay mounts and unmounts with mount(2) and umount2(2) directly.
 * mount(8) loads libmount and parses fstab and utab for each call (~10 ms more per container
 * start here than this static helper); Node has no mount syscall of its own.
 *
 *   berth-mount overlay DIR OPTIONS TARGET [ro]   chdir(DIR) (the lowerdirs in OPTIONS may be
 *                              relative to it), then mount("overlay", TARGET, "overlay", 0 or MS_RDONLY, OPTIONS)
 *   berth-mount umount [-l] TARGET           umount2(TARGET, 0 or MNT_DETACH)
 *
 * Exit 0 on success; otherwise 1 and one line on stderr that says what failed and why.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static int usage(void) {
  fputs("usage: berth-mount overlay DIR OPTIONS TARGET [ro] | berth-mount umount [-l] TARGET\n", stderr);
  return 2;
}

int main(int argc, char **argv) {
  if ((argc == 5 || (argc == 6 && strcmp(argv[5], "ro") == 0)) && strcmp(argv[1], "overlay") == 0) {
    if (chdir(argv[2]) != 0) {
      fprintf(stderr, "berth-mount: cannot enter %s: %s\n", argv[2], strerror(errno));
      return 1;
    }
    // The option string of mount(2) is one page at most; the caller keeps it shorter.
    if (mount("overlay", argv[4], "overlay", argc == 6 ? MS_RDONLY : 0, argv[3]) != 0) {
      fprintf(stderr, "berth-mount: overlay on %s: %s\n", argv[4], strerror(errno));
      return 1;
    }
    return 0;
  }
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "umount") == 0) {
    int lazy = argc == 4 && strcmp(argv[2], "-l") == 0;
    if (argc == 4 && !lazy) return usage();
    const char *target = argv[argc - 1];
    if (umount2(target, lazy ? MNT_DETACH : 0) != 0) {
      fprintf(stderr, "berth-mount: umount %s: %s\n", target, strerror(errno));
      return 1;
    }
    return 0;
  }
  return usage();
}
