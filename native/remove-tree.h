/*
 * remove_tree(DIR): deletes DIR and everything under it, without following symbolic links or
 * crossing into other file systems (a mount left inside stays, and so does its mount point).
 * Needs <ftw.h>, <unistd.h> and <sys/stat.h>.
 */
#ifndef BERTH_REMOVE_TREE_H
#define BERTH_REMOVE_TREE_H

static int remove_tree_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb; (void)ftw;
  if (flag == FTW_DP) rmdir(path); else unlink(path);
  return 0;
}

static void remove_tree(const char *dir) {
  nftw(dir, remove_tree_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  rmdir(dir);
}

#endif
