/*
 * berth-init: carries out a container plan computed by berth-runtime's TypeScript planner.
 * It makes no policy decisions: every choice (flags, order, ids, paths) arrives in the plan.
 *
 * Plan: records on fd 3, each "KEY LEN\n" + LEN bytes + "\n"; fields inside a value are
 * separated by NUL bytes; the plan ends with the record "end".
 * Sync on fd 3 afterwards (lines): init -> runtime "pid N", "mounted", "ready", "error MSG",
 * and "net" (stage 1, any time after "pid", once it plugged the network of a "net" record);
 * runtime -> init "go" (after id maps/cgroups, and again after the createRuntime and
 * createContainer hooks).
 *
 * Stage 1 (this process) joins namespaces given by path, unshares the time namespace and
 * writes its offsets, then clones stage 2 into the new namespaces. Stage 1 reports stage 2's
 * pid and exits, or with "keep" stays as its parent, forwards signals and exits with its
 * status. Stage 2 waits for "go", sets the container up, blocks on the exec fifo, and execs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#define SYNC_FD 3
#define MAX_ITEMS 4096

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
struct berth_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#include "openat2.h"
#include "netlink.h"

/* ---- plan ------------------------------------------------------------------------- */

struct record { char key[64]; char *val; size_t len; };
static struct record recs[MAX_ITEMS];
static int nrecs;

static int in_child;

/* The front end may send its guess of the cgroup records ahead of the runtime ("guess"
 * record first). A guessed record that fails is not reported at once: the runtime may still
 * reject the guess (and kill us) or fail for its own reasons (and close the socket). Only
 * when the runtime goes on with its plan, i.e. adopts the guess, is the failure reported. */
static int guessing;
static jmp_buf guess_failed_at;
static char guess_error[1024];

static void die(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (guessing) {
    snprintf(guess_error, sizeof guess_error, "%s", msg);
    longjmp(guess_failed_at, 1);
  }
  char line[1200];
  int n = snprintf(line, sizeof line, "error %s\n", msg);
  if (write(SYNC_FD, line, (size_t)n) < 0) { /* runtime gone: stderr below still says it */ }
  fprintf(stderr, "berth-init: %s\n", msg);
  _exit(1);
}

static int got_any; /* a byte of the plan arrived */
static int at_record_start; /* between records: EOF here is the runtime giving up */

/* Sync socket input, buffered: the plan is thousands of small fields, and one read(2) per
 * header byte cost ~2000 syscalls per create. Only this process (and, after clone, its copy
 * in stage 2) reads the socket, and the runtime sends nothing past a message until answered,
 * so the buffer never holds another process's bytes. */
static char sync_buf[65536];
static size_t sync_off, sync_len;

/* Returns 0 at end of input. */
static size_t sync_fill(void) {
  for (;;) {
    ssize_t n = read(SYNC_FD, sync_buf, sizeof sync_buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 0;
    sync_off = 0;
    sync_len = (size_t)n;
    return sync_len;
  }
}

static void read_full(int fd, char *buf, size_t len) {
  (void)fd; /* always SYNC_FD */
  size_t off = 0;
  while (off < len) {
    if (sync_off == sync_len && sync_fill() == 0) {
      /* Started ahead by the front end, then not needed (perhaps after the cgroups it was
       * sent ahead): the runtime removes what it made. */
      if (!got_any || at_record_start) _exit(1);
      die("plan truncated");
    }
    got_any = 1;
    at_record_start = 0;
    size_t n = sync_len - sync_off < len - off ? sync_len - sync_off : len - off;
    memcpy(buf + off, sync_buf + sync_off, n);
    sync_off += n;
    off += n;
  }
}

static void join_cgroup(struct record *r);

static int forked;

static void read_plan(void) {
  for (;;) {
    char head[64];
    size_t i = 0;
    at_record_start = 1;
    for (;;) {
      if (i >= sizeof head - 1) die("plan header too long");
      read_full(SYNC_FD, head + i, 1);
      if (head[i] == '\n') break;
      i++;
    }
    head[i] = 0;
    char *sp = strchr(head, ' ');
    if (!sp) die("bad plan header");
    *sp = 0;
    if (nrecs >= MAX_ITEMS) die("plan too large");
    struct record *r = &recs[nrecs];
    snprintf(r->key, sizeof r->key, "%s", head);
    r->len = strtoul(sp + 1, NULL, 10);
    r->val = malloc(r->len + 2);
    if (!r->val) die("out of memory");
    read_full(SYNC_FD, r->val, r->len + 1);
    r->val[r->len] = 0;
    if (strcmp(r->key, "guess") == 0) {
      /* Named apart until adopted: a concurrent create whose cgroup this guess sits in can
       * tell that it will leave (src/runtime/create.ts, guessesLeft). */
      guessing = 1;
      prctl(PR_SET_NAME, "berth-guess", 0, 0, 0);
      free(r->val);
      continue;
    }
    if (strcmp(r->key, "cgroup") == 0) {
      /* Sent ahead of the rest of the plan, so that the (slow, on cgroup v1) placement runs
       * while the runtime is still validating and planning. */
      if (!guessing) join_cgroup(r);
      else if (!guess_error[0]) {
        if (setjmp(guess_failed_at) == 0) join_cgroup(r); /* (C11 7.13.1.1: setjmp alone in the if) */
      }
    } else if (guessing) {
      guessing = 0;
      prctl(PR_SET_NAME, "berth-init", 0, 0, 0);
      if (guess_error[0]) die("%s", guess_error);
    }
    if (strcmp(r->key, "end") == 0) return;
    /* The head of a plan: stage 1 clones now, stage 2 reads the rest (up to "end"). */
    if (strcmp(r->key, "fork") == 0) { forked = 1; return; }
    nrecs++;
  }
}

static const char *get(const char *key) {
  for (int i = 0; i < nrecs; i++)
    if (strcmp(recs[i].key, key) == 0) return recs[i].val;
  return NULL;
}

static long long get_num(const char *key, long long dflt) {
  const char *v = get(key);
  return v ? strtoll(v, NULL, 0) : dflt;
}

/* Splits a record value into its NUL-separated fields. */
static int fields(struct record *r, char **out, int max) {
  int n = 0;
  size_t off = 0;
  while (off <= r->len && n < max) {
    out[n++] = r->val + off;
    off += strlen(r->val + off) + 1;
  }
  return n;
}

/* ---- sync --------------------------------------------------------------------------- */

static void say(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (write(SYNC_FD, line, (size_t)n) != n) die("sync write failed: %s", strerror(errno));
}

static void wait_go(void) {
  char buf[4];
  for (size_t i = 0; i < 3; i++) {
    if (sync_off == sync_len && sync_fill() == 0) _exit(1); /* the runtime gave up; it cleans up */
    buf[i] = sync_buf[sync_off++];
  }
  if (memcmp(buf, "go\n", 3) != 0) die("unexpected sync message");
}

/* ---- helpers ------------------------------------------------------------------------ */

static void mkdir_p(const char *path, mode_t mode) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, mode) < 0 && errno != EEXIST) die("mkdir %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, mode) < 0 && errno != EEXIST) die("mkdir %s: %s", tmp, strerror(errno));
}

static void parent_dir(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  char *slash = strrchr(tmp, '/');
  if (slash && slash != tmp) { *slash = 0; mkdir_p(tmp, 0755); }
}

static void touch(const char *path) {
  parent_dir(path);
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0 && errno != EEXIST && errno != EISDIR) die("create %s: %s", path, strerror(errno));
  if (fd >= 0) close(fd);
}

static void write_file(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) die("open %s: %s", path, strerror(errno));
  size_t len = strlen(data);
  if (write(fd, data, len) != (ssize_t)len) die("write %s: %s", path, strerror(errno));
  close(fd);
}

/* ---- cgroups ------------------------------------------------------------------------ */

static int read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
  buf[n] = 0;
  return (int)n;
}

/* A new v1 cpuset has empty cpus/mems and takes no tasks: copy them down from the parent,
 * from the hierarchy's root to dir. */
static void fill_cpuset(const char *mount_point, const char *dir) {
  size_t root = strlen(mount_point);
  for (size_t end = root + 1; end <= strlen(dir); end++) {
    if (dir[end] != '/' && dir[end] != 0) continue;
    char d[4096], parent[4096];
    snprintf(d, sizeof d, "%.*s", (int)end, dir);
    snprintf(parent, sizeof parent, "%s", d);
    *strrchr(parent, '/') = 0;
    const char *files[] = { "cpuset.cpus", "cpuset.mems" };
    for (int i = 0; i < 2; i++) {
      char file[4200], pfile[4200], val[4096];
      snprintf(file, sizeof file, "%s/%s", d, files[i]);
      if (read_small(file, val, sizeof val) != 0) continue; /* absent or already set */
      snprintf(pfile, sizeof pfile, "%s/%s", parent, files[i]);
      if (read_small(pfile, val, sizeof val) < 0) die("read %s: %s", pfile, strerror(errno));
      write_file(file, val);
    }
  }
}

/* Record "cgroup": MOUNTPOINT NUL DIR. Makes DIR (config-linux.md "Control groups": an
 * existing one must be empty and not frozen) and moves this process into it; the container
 * process, cloned later, starts there. The runtime applies the resources and removes DIR on
 * failure. */
static void join_cgroup(struct record *r) {
  char *f[2];
  if (fields(r, f, 2) != 2) die("bad cgroup record");
  const char *mount_point = f[0], *dir = f[1];
  char file[4200], val[4096];
  snprintf(file, sizeof file, "%s/cgroup.procs", dir);
  if (read_small(file, val, sizeof val) > 0)
    die("cgroup %s already has processes (%.64s); another container may use this cgroupsPath: choose another one or stop those processes", dir, val);
  snprintf(file, sizeof file, "%s/freezer.state", dir);
  if (read_small(file, val, sizeof val) > 0 && strcmp(val, "THAWED") != 0)
    die("cgroup %s exists and is frozen; thaw or remove it, or choose another cgroupsPath", dir);
  snprintf(file, sizeof file, "%s/cgroup.freeze", dir);
  if (read_small(file, val, sizeof val) > 0 && strcmp(val, "1") == 0)
    die("cgroup %s exists and is frozen; thaw or remove it, or choose another cgroupsPath", dir);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", dir);
  for (char *p = tmp + strlen(mount_point) + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) die("cannot create cgroup %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0755) < 0 && errno != EEXIST) die("cannot create cgroup %s: %s", dir, strerror(errno));
  snprintf(file, sizeof file, "%s/cpuset.cpus", dir);
  if (access(file, F_OK) == 0) fill_cpuset(mount_point, dir);
  snprintf(file, sizeof file, "%s/cgroup.procs", dir);
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "0", 1) != 1)
    die("cannot move berth-init into cgroup %s: %s", dir, strerror(errno));
  close(fd);
}

static unsigned long locked_flags(const char *target) {
  struct statvfs s;
  unsigned long f = 0;
  if (statvfs(target, &s) < 0) return 0;
  if (s.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (s.f_flag & ST_NODEV) f |= MS_NODEV;
  if (s.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (s.f_flag & ST_RDONLY) f |= MS_RDONLY;
  if (s.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (s.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (s.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

/* Remounts a bind mount with flags; in a user namespace the kernel refuses to clear locked
 * flags, so retry keeping what the mount already has. */
static void remount_bind(const char *target, unsigned long flags) {
  if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags, NULL) == 0) return;
  if (errno == EPERM &&
      mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags | locked_flags(target), NULL) == 0)
    return;
  die("remount %s: %s", target, strerror(errno));
}

/* Makes a mount read-only and keeps its other flags (nosuid, nodev, noexec, atime), as runc
 * does: a remount takes the flags it is given, so without them they would be cleared. */
static void remount_ro(const char *target) {
  remount_bind(target, MS_RDONLY | locked_flags(target));
}

/* ---- mounts --------------------------------------------------------------------------- */

/* ---- paths inside the root filesystem ---------------------------------------------------
 * Mount, device and symlink destinations are container paths, resolved here, at the moment
 * they are used, with openat2(RESOLVE_IN_ROOT) on the rootfs: ".." and symlinks (absolute ones
 * too) resolve as they would inside the container, so neither a symlink in the image nor one
 * inside an earlier bind mount's source nor one swapped in meanwhile can take a mount outside
 * the root. Mounts go onto the resolved file through /proc/self/fd/N (runc does the same). */

static int root_fd = -1;

static int open_in_root(const char *rel, uint64_t flags) {
  struct berth_open_how how = { O_PATH | O_CLOEXEC | flags, 0, BERTH_RESOLVE_IN_ROOT | BERTH_RESOLVE_NO_MAGICLINKS };
  int fd = berth_openat2(root_fd, *rel ? rel : ".", &how);
  if (fd < 0 && errno == ENOSYS) die("this kernel has no openat2 (Linux 5.6 or newer is needed to resolve paths inside the root filesystem safely)");
  return fd;
}

static const char *relative(const char *cpath) {
  while (*cpath == '/') cpath++;
  return cpath;
}

/* The directory holding cpath's last component (made if missing, each level resolved in the
 * root); *name is set to that component. */
static int parent_in_root(const char *cpath, char *name, size_t size) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", relative(cpath));
  size_t n = strlen(buf);
  while (n > 0 && buf[n - 1] == '/') buf[--n] = 0;
  char *slash = strrchr(buf, '/');
  snprintf(name, size, "%s", slash ? slash + 1 : buf);
  if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) die("bad container path %s", cpath);
  if (!slash) return open_in_root("", O_DIRECTORY);
  *slash = 0;
  int fd = open_in_root(buf, O_DIRECTORY);
  if (fd >= 0) return fd;
  if (errno != ENOENT) die("open %s in the root filesystem: %s", buf, strerror(errno));
  /* Make the missing levels one by one, each under a parent resolved in the root. */
  for (char *p = buf;; p++) {
    if (*p != '/' && *p != 0) continue;
    char saved = *p;
    *p = 0;
    if (*buf) {
      int dir = open_in_root(buf, O_DIRECTORY);
      if (dir < 0) {
        char level[256];
        int parent = parent_in_root(buf, level, sizeof level);
        if (mkdirat(parent, level, 0755) < 0 && errno != EEXIST) die("mkdir %s in the root filesystem: %s", buf, strerror(errno));
        close(parent);
      } else close(dir);
    }
    *p = saved;
    if (!saved) break;
  }
  fd = open_in_root(buf, O_DIRECTORY);
  if (fd < 0) die("open %s in the root filesystem: %s", buf, strerror(errno));
  return fd;
}

/* An O_PATH fd on cpath inside the root; with `make` 'd' or 'f' it is created (directory or
 * empty file) when missing, also where cpath is a dangling symlink (its target is made, in the
 * root, as runc does for e.g. an image's /etc/resolv.conf). */
static int in_root_hops(const char *cpath, char make, int hops) {
  int fd = open_in_root(relative(cpath), 0);
  if (fd >= 0 || errno != ENOENT || !make) {
    if (fd < 0) die("open %s in the root filesystem: %s", cpath, strerror(errno));
    return fd;
  }
  char name[256];
  int parent = parent_in_root(cpath, name, sizeof name);
  struct stat st;
  if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    char link[4096], next[8192];
    ssize_t n = readlinkat(parent, name, link, sizeof link - 1);
    close(parent);
    if (n < 0 || hops > 40) die("resolve %s in the root filesystem: %s", cpath, n < 0 ? strerror(errno) : "too many symlinks");
    link[n] = 0;
    if (link[0] == '/') snprintf(next, sizeof next, "%s", link);
    else {
      char dir[4096];
      snprintf(dir, sizeof dir, "%s", cpath);
      char *slash = strrchr(dir, '/');
      if (slash) *slash = 0; else dir[0] = 0;
      snprintf(next, sizeof next, "%s/%s", dir, link);
    }
    return in_root_hops(next, make, hops + 1);
  }
  if (make == 'd') {
    if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) die("mkdir %s: %s", cpath, strerror(errno));
  } else {
    int f = openat(parent, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (f < 0 && errno != EEXIST && errno != EISDIR) die("create %s: %s", cpath, strerror(errno));
    if (f >= 0) close(f);
  }
  close(parent);
  fd = open_in_root(relative(cpath), 0);
  if (fd < 0) die("open %s in the root filesystem: %s", cpath, strerror(errno));
  return fd;
}

static int in_root(const char *cpath, char make) { return in_root_hops(cpath, make, 0); }

static void fd_path(int fd, char *out, size_t size) {
  snprintf(out, size, "/proc/self/fd/%d", fd);
}

/* mount record: src, dst (container path), type, flags, data, propagation flags
 * (comma-separated numbers), attr_set, attr_clr, is_file (bind source is not a directory). */
static void do_mount(struct record *r) {
  char *f[10];
  if (fields(r, f, 10) < 9) die("bad mount record");
  const char *src = f[0], *dst = f[1], *type = f[2], *data = f[4];
  unsigned long flags = strtoul(f[3], NULL, 0);
  uint64_t attr_set = strtoull(f[6], NULL, 0), attr_clr = strtoull(f[7], NULL, 0);
  int is_file = f[8][0] == '1';
  char target[64];
  int fd = in_root(dst, is_file ? 'f' : 'd');
  fd_path(fd, target, sizeof target);

  if (flags & MS_REMOUNT) {
    if (mount(NULL, target, NULL, flags, data[0] ? data : NULL) < 0)
      die("remount %s: %s", dst, strerror(errno));
  } else if (flags & MS_BIND) {
    if (mount(src, target, type[0] ? type : NULL, flags & (MS_BIND | MS_REC), NULL) < 0)
      die("bind mount %s on %s: %s", src, dst, strerror(errno));
  } else {
    if (mount(src, target, type, flags, data[0] ? data : NULL) < 0) {
      /* A data option the filesystem does not take, or a flag it refuses: say which. */
      die("mount %s (type %s, options \"%s\") on %s: %s", src, type, data, dst, strerror(errno));
    }
  }
  close(fd);
  /* The fd named what was there before; the steps below need the new mount. */
  fd = in_root(dst, 0);
  fd_path(fd, target, sizeof target);
  unsigned long rest = flags & ~(MS_BIND | MS_REC);
  if ((flags & MS_BIND) && !(flags & MS_REMOUNT) && rest) remount_bind(target, rest);
  for (char *p = f[5]; *p;) {
    unsigned long prop = strtoul(p, &p, 0);
    if (prop && mount(NULL, target, NULL, prop, NULL) < 0)
      die("set propagation of %s: %s", dst, strerror(errno));
    if (*p == ',') p++;
  }
  if (attr_set || attr_clr) {
    struct berth_mount_attr a = { attr_set, attr_clr, 0, 0 };
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
      die("mount_setattr %s: %s", dst, strerror(errno));
  }
  close(fd);
}

/* device record: container path, type (c|b|p|bind), major, minor, mode, uid, gid, host path (for bind) */
static void do_device(struct record *r) {
  char *f[8];
  if (fields(r, f, 8) < 8) die("bad device record");
  const char *path = f[0], *type = f[1];
  if (strcmp(type, "bind") == 0) {
    char target[64];
    int fd = in_root(path, 'f');
    fd_path(fd, target, sizeof target);
    if (mount(f[7], target, NULL, MS_BIND, NULL) < 0) die("bind device %s: %s", f[7], strerror(errno));
    close(fd);
    return;
  }
  mode_t mode = (mode_t)strtoul(f[4], NULL, 0);
  mode |= type[0] == 'c' ? S_IFCHR : type[0] == 'b' ? S_IFBLK : S_IFIFO;
  dev_t dev = makedev(strtoul(f[2], NULL, 0), strtoul(f[3], NULL, 0));
  char name[256];
  int dir = parent_in_root(path, name, sizeof name);
  unlinkat(dir, name, 0);
  if (mknodat(dir, name, mode, dev) < 0) die("mknod %s: %s", path, strerror(errno));
  if (fchmodat(dir, name, mode & 07777, 0) < 0) die("chmod %s: %s", path, strerror(errno));
  if (fchownat(dir, name, (uid_t)strtoul(f[5], NULL, 0), (gid_t)strtoul(f[6], NULL, 0), AT_SYMLINK_NOFOLLOW) < 0)
    die("chown %s: %s", path, strerror(errno));
  close(dir);
}

/* symlink record: target, container path of the link */
static void do_symlink(struct record *r) {
  char *f[2];
  if (fields(r, f, 2) < 2) die("bad symlink record");
  char name[256];
  int dir = parent_in_root(f[1], name, sizeof name);
  if (symlinkat(f[0], dir, name) < 0 && errno != EEXIST) die("symlink %s: %s", f[1], strerror(errno));
  close(dir);
}

static void mask_path(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0) {
    if (errno == ENOENT) return; /* config-linux.md: nothing to mask */
    die("stat masked path %s: %s", path, strerror(errno));
  }
  int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0k")
                               : mount("/dev/null", path, NULL, MS_BIND, NULL);
  if (rc < 0) die("mask %s: %s", path, strerror(errno));
}

static void readonly_path(const char *path) {
  if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
    if (errno == ENOENT) return;
    die("bind readonly path %s: %s", path, strerror(errno));
  }
  remount_ro(path);
}

/* ---- terminal --------------------------------------------------------------------------- */

static int console_sock = -1;

static void connect_console(void) {
  const char *path = get("console");
  if (!path) return;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof sa.sun_path) die("console socket path too long: %s", path);
  strcpy(sa.sun_path, path);
  console_sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (console_sock < 0 || connect(console_sock, (struct sockaddr *)&sa, sizeof sa) < 0)
    die("connect to console socket %s: %s", path, strerror(errno));
}

/* Opens a pty in the container, hands the master to the console socket as SCM_RIGHTS (the
 * way runc does, with the pty name as payload) and makes the slave our controlling tty. */
static void setup_terminal(void) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) die("open /dev/ptmx: %s", strerror(errno));
  if (unlockpt(master) < 0) die("unlockpt: %s", strerror(errno));
  char name[128];
  if (ptsname_r(master, name, sizeof name) != 0) die("ptsname: %s", strerror(errno));
  long w = get_num("console_width", 0), h = get_num("console_height", 0);
  if (w && h) {
    struct winsize ws = { .ws_row = (unsigned short)h, .ws_col = (unsigned short)w };
    ioctl(master, TIOCSWINSZ, &ws);
  }
  int slave = open(name, O_RDWR | O_NOCTTY);
  if (slave < 0) die("open %s: %s", name, strerror(errno));
  if (get("console_bind")) touch("/dev/console");
  if (get("console_bind") && mount(name, "/dev/console", NULL, MS_BIND, NULL) < 0)
    die("bind %s on /dev/console: %s", name, strerror(errno));

  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = { .iov_base = name, .iov_len = strlen(name) };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &master, sizeof(int));
  if (sendmsg(console_sock, &msg, 0) < 0) die("send pty to console socket: %s", strerror(errno));
  close(master);
  close(console_sock);
  for (int fd = 0; fd < 3; fd++)
    if (dup2(slave, fd) < 0) die("dup2 pty: %s", strerror(errno));
  if (slave > 2) close(slave);
  if (ioctl(0, TIOCSCTTY, 0) < 0) die("TIOCSCTTY: %s", strerror(errno));
}

/* ---- credentials, capabilities, seccomp ------------------------------------------------ */

static void drop_bounding(uint64_t keep) {
  int last = 40;
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  if (f) { if (fscanf(f, "%d", &last) != 1) last = 40; fclose(f); }
  for (int cap = 0; cap <= last; cap++) {
    if (keep & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      die("drop capability %d from the bounding set: %s", cap, strerror(errno));
  }
}

static void set_caps(uint64_t eff, uint64_t perm, uint64_t inh, uint64_t amb) {
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct d[2] = {
    { (uint32_t)eff, (uint32_t)perm, (uint32_t)inh },
    { (uint32_t)(eff >> 32), (uint32_t)(perm >> 32), (uint32_t)(inh >> 32) },
  };
  if (syscall(SYS_capset, &hdr, d) < 0) die("capset: %s", strerror(errno));
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    die("clear ambient capabilities: %s", strerror(errno));
  /* The kernel allows an ambient capability only when it is permitted and inheritable; like
   * runc, a config asking for others gets the ones it can have (runc's default spec does). */
  amb &= perm & inh;
  for (int cap = 0; cap < 64; cap++)
    if ((amb & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
      die("raise ambient capability %d: %s", cap, strerror(errno));
}

static void load_seccomp(void) {
  struct record *r = NULL;
  for (int i = 0; i < nrecs; i++) if (strcmp(recs[i].key, "seccomp") == 0) r = &recs[i];
  if (!r) return;
  struct sock_fprog prog = { .len = (unsigned short)(r->len / 8), .filter = (struct sock_filter *)r->val };
  unsigned long flags = (unsigned long)get_num("seccomp_flags", 0);
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) < 0)
    die("load seccomp filter: %s", strerror(errno));
}

static void set_user(void) {
  uid_t uid = (uid_t)get_num("uid", 0);
  gid_t gid = (gid_t)get_num("gid", 0);
  const char *groups = get("groups");
  gid_t gl[256];
  int ng = 0;
  for (const char *p = groups; p && *p && ng < 256;) {
    char *end;
    gl[ng++] = (gid_t)strtoul(p, &end, 10);
    p = *end == ',' ? end + 1 : end;
  }
  if (!get("no_setgroups") && setgroups((size_t)ng, gl) < 0)
    die("setgroups: %s", strerror(errno));
  if (setresgid(gid, gid, gid) < 0) die("setgid %u: %s", gid, strerror(errno));
  if (setresuid(uid, uid, uid) < 0) die("setuid %u: %s", uid, strerror(errno));
}

static void apply_process_attrs(void) {
  for (int i = 0; i < nrecs; i++) {
    struct record *r = &recs[i];
    if (strcmp(r->key, "rlimit") == 0) {
      char *f[3];
      if (fields(r, f, 3) < 3) die("bad rlimit record");
      struct rlimit rl = { strtoull(f[1], NULL, 0), strtoull(f[2], NULL, 0) };
      if (setrlimit((int)strtol(f[0], NULL, 0), &rl) < 0)
        die("setrlimit %s: %s", f[0], strerror(errno));
    }
  }
  if (get("personality") && personality((unsigned long)get_num("personality", 0)) < 0)
    die("personality: %s", strerror(errno));
  if (get("ioprio") && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (int)get_num("ioprio", 0)) < 0)
    die("ioprio_set: %s", strerror(errno));
  if (get("sched_policy")) {
    struct { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t prio; uint64_t rt, dl, per; } a;
    memset(&a, 0, sizeof a);
    a.size = 48;
    a.policy = (uint32_t)get_num("sched_policy", 0);
    a.flags = (uint64_t)get_num("sched_flags", 0);
    a.nice = (int32_t)get_num("sched_nice", 0);
    a.prio = (uint32_t)get_num("sched_priority", 0);
    a.rt = (uint64_t)get_num("sched_runtime", 0);
    a.dl = (uint64_t)get_num("sched_deadline", 0);
    a.per = (uint64_t)get_num("sched_period", 0);
    if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) die("sched_setattr: %s", strerror(errno));
  }
}

/* ---- hooks run inside the container (createContainer, startContainer) ------------------------------- */

/* hook record: timeout seconds, path, argc, args..., env... */
static void run_hook(struct record *r, const char *state, const char *kind) {
  char *f[512];
  int n = fields(r, f, 512);
  if (n < 3) die("bad hook record");
  int timeout = atoi(f[0]);
  int argc = atoi(f[2]);
  if (3 + argc > n) die("bad hook record");
  char *argv[260], *envp[260];
  int a = 0, e = 0;
  for (int i = 0; i < argc && a < 259; i++) argv[a++] = f[3 + i];
  argv[a] = NULL;
  for (int i = 3 + argc; i < n && e < 259; i++) if (f[i][0]) envp[e++] = f[i];
  envp[e] = NULL;
  int in[2];
  if (pipe2(in, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork hook: %s", strerror(errno));
  if (pid == 0) {
    dup2(in[0], 0);
    execve(f[1], argc ? argv : (char *[]){ f[1], NULL }, envp);
    fprintf(stderr, "berth-init: exec hook %s: %s\n", f[1], strerror(errno));
    _exit(127);
  }
  close(in[0]);
  if (write(in[1], state, strlen(state)) < 0) { /* a hook may ignore its stdin */ }
  close(in[1]);
  int status = 0, waited = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, timeout ? WNOHANG : 0);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) die("wait hook: %s", strerror(errno));
    usleep(2000);
    if (timeout && ++waited > timeout * 500) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      die("%s hook %s timed out after %d s", kind, f[1], timeout);
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die("%s hook %s failed (status %d)", kind, f[1], status);
}

/* ---- the container process ------------------------------------------------------------- */

/*
 * Only stdio reaches the container (berth-runtime refuses --preserve-fds): whatever else the
 * engine's caller left open (a shell's fd 9, a CI harness's pipes) would otherwise be readable
 * and writable inside it. Marked close-on-exec rather than closed, so that the exec error below
 * can still be written; close_range where the kernel has it (5.11), else one by one.
 */
static void close_inherited_fds(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void exec_process(void) {
  char *argv[1024], *envp[1024];
  int a = 0, e = 0;
  for (int i = 0; i < nrecs; i++) {
    if (strcmp(recs[i].key, "arg") == 0 && a < 1023) argv[a++] = recs[i].val;
    if (strcmp(recs[i].key, "env") == 0 && e < 1023) envp[e++] = recs[i].val;
  }
  argv[a] = NULL;
  envp[e] = NULL;
  if (a == 0) die("process.args is empty");
  close_inherited_fds();
  environ = envp;
  execvp(argv[0], argv);
  /* As shells and engines do: 127 when the command is not there, 126 when it cannot run. */
  int err = errno;
  fprintf(stderr, "berth-init: exec %s: %s\n", argv[0], strerror(err));
  _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
}

static int open_exec_fifo(int *dummy) {
  const char *fifo = get("fifo");
  if (!fifo) return -1;
  /* Open the read end, then a write end of our own so read() blocks until `start` writes
   * a byte instead of returning EOF. */
  if (mkfifo(fifo, 0622) < 0) die("create exec fifo %s: %s", fifo, strerror(errno));
  int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("open exec fifo %s: %s", fifo, strerror(errno));
  *dummy = open(fifo, O_WRONLY | O_CLOEXEC);
  if (*dummy < 0) die("open exec fifo %s: %s", fifo, strerror(errno));
  fcntl(fd, F_SETFL, 0);
  return fd;
}

static void wait_exec_fifo(int fd, int dummy) {
  if (fd < 0) return;
  char c;
  ssize_t n;
  do n = read(fd, &c, 1); while (n < 0 && errno == EINTR);
  if (n != 1) _exit(1);
  close(fd);
  close(dummy);
}

/* The state document for startContainer hooks: the runtime sends it with the second "go",
 * once our pid is known, as "state LEN\n" + LEN bytes. */
static char *hook_state;
static void read_state(void) {
  char head[32];
  size_t i = 0;
  for (;;) {
    if (i >= sizeof head - 1) die("bad sync message");
    read_full(SYNC_FD, head + i, 1);
    if (head[i] == '\n') break;
    i++;
  }
  head[i] = 0;
  if (strncmp(head, "state ", 6) != 0) die("expected the state from the runtime, got \"%s\"", head);
  size_t len = strtoul(head + 6, NULL, 10);
  hook_state = malloc(len + 1);
  if (!hook_state) die("out of memory");
  read_full(SYNC_FD, hook_state, len);
  hook_state[len] = 0;
}

/* Opened by stage 1 as the host's root, inherited by the container process, which in a user
 * namespace could not open the runtime's state directory. */
static int fifo = -1, fifo_dummy = -1;

static void container_main(void) {
  int is_exec = get("exec") != NULL;
  wait_go();

  if (get("userns") && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
    die("become root in the user namespace: %s", strerror(errno));
  if (get("cgroupns") && unshare(CLONE_NEWCGROUP) < 0)
    die("unshare cgroup namespace: %s", strerror(errno));
  if (get("setsid") && setsid() < 0) die("setsid: %s", strerror(errno));
  if (get("hostname") && sethostname(get("hostname"), strlen(get("hostname"))) < 0)
    die("sethostname: %s", strerror(errno));
  if (get("domainname") && setdomainname(get("domainname"), strlen(get("domainname"))) < 0)
    die("setdomainname: %s", strerror(errno));

  const char *rootfs = get("rootfs");
  if (!is_exec) {
    if (get("mountns")) {
      unsigned long prop = (unsigned long)get_num("root_propagation", MS_SLAVE | MS_REC);
      if (mount(NULL, "/", NULL, prop, NULL) < 0) die("set / propagation: %s", strerror(errno));
      if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        die("bind rootfs %s: %s", rootfs, strerror(errno));
      root_fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (root_fd < 0) die("open rootfs %s: %s", rootfs, strerror(errno));
      for (int i = 0; i < nrecs; i++) {
        struct record *r = &recs[i];
        if (strcmp(r->key, "mount") == 0) do_mount(r);
        else if (strcmp(r->key, "device") == 0) do_device(r);
        else if (strcmp(r->key, "symlink") == 0) do_symlink(r);
      }
    }
    if (!get("straight")) { /* the runtime runs hooks here, then sends the state */
      say("mounted\n");
      read_state();
      wait_go();
      /* config.md: createContainer hooks run in the container namespace, before pivot_root. */
      for (int i = 0; i < nrecs; i++)
        if (strcmp(recs[i].key, "cchook") == 0) run_hook(&recs[i], hook_state, "createContainer");
    }
    if (chdir(rootfs) < 0) die("chdir %s: %s", rootfs, strerror(errno));
    if (get("mountns")) {
      if (get("no_pivot")) {
        if (mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0) die("move rootfs: %s", strerror(errno));
        if (chroot(".") < 0) die("chroot: %s", strerror(errno));
      } else {
        /* pivot_root(".", ".") stacks the old root on top of the new one; detach it. */
        if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root %s: %s", rootfs, strerror(errno));
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) die("make old root slave: %s", strerror(errno));
        if (umount2(".", MNT_DETACH) < 0) die("detach old root: %s", strerror(errno));
      }
      if (chdir("/") < 0) die("chdir /: %s", strerror(errno));
      if (get("root_propagation_after") &&
          mount(NULL, "/", NULL, (unsigned long)get_num("root_propagation_after", 0), NULL) < 0)
        die("set rootfs propagation: %s", strerror(errno));
    } else if (chroot(".") < 0) {
      die("chroot %s: %s", rootfs, strerror(errno));
    }
    for (int i = 0; i < nrecs; i++) {
      struct record *r = &recs[i];
      if (strcmp(r->key, "sysctl") == 0) {
        char *f[2];
        if (fields(r, f, 2) < 2) die("bad sysctl record");
        char path[512];
        snprintf(path, sizeof path, "/proc/sys/%s", f[0]);
        for (char *p = path + 10; *p; p++) if (*p == '.') *p = '/';
        write_file(path, f[1]);
      }
    }
    for (int i = 0; i < nrecs; i++) {
      if (strcmp(recs[i].key, "mask") == 0) mask_path(recs[i].val);
      else if (strcmp(recs[i].key, "readonly") == 0) readonly_path(recs[i].val);
    }
    if (get("root_readonly")) remount_ro("/");
  }
  if (get("terminal")) setup_terminal();
  apply_process_attrs();
  if (get("umask")) umask((mode_t)get_num("umask", 022));

  int nnp = get("nnp") != NULL;
  if (!nnp) load_seccomp(); /* needs CAP_SYS_ADMIN without no_new_privs */
  drop_bounding((uint64_t)strtoull(get("cap_bounding") ? get("cap_bounding") : "0", NULL, 0));
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) die("keepcaps: %s", strerror(errno));
  set_user();
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) die("keepcaps: %s", strerror(errno));
  set_caps((uint64_t)strtoull(get("cap_effective") ? get("cap_effective") : "0", NULL, 0),
           (uint64_t)strtoull(get("cap_permitted") ? get("cap_permitted") : "0", NULL, 0),
           (uint64_t)strtoull(get("cap_inheritable") ? get("cap_inheritable") : "0", NULL, 0),
           (uint64_t)strtoull(get("cap_ambient") ? get("cap_ambient") : "0", NULL, 0));
  if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs: %s", strerror(errno));
  const char *cwd = get("cwd");
  if (cwd && chdir(cwd) < 0) die("chdir %s: %s", cwd, strerror(errno));

  say("ready\n");
  close(SYNC_FD);
  wait_exec_fifo(fifo, fifo_dummy);
  const char *state = hook_state ? hook_state : "{}";
  for (int i = 0; i < nrecs; i++)
    if (strcmp(recs[i].key, "hook") == 0) run_hook(&recs[i], state, "startContainer");
  if (nnp) load_seccomp();
  exec_process();
}

/* ---- stage 1 ----------------------------------------------------------------------------- */

static pid_t child_pid;

static void forward_signal(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

/* config-linux.md namespace type -> CLONE_NEW* flag. */
static int ns_flag(const char *type) {
  static const struct { const char *name; int flag; } t[] = {
    { "mount", CLONE_NEWNS }, { "uts", CLONE_NEWUTS }, { "ipc", CLONE_NEWIPC }, { "user", CLONE_NEWUSER },
    { "pid", CLONE_NEWPID }, { "network", CLONE_NEWNET }, { "cgroup", CLONE_NEWCGROUP }, { "time", CLONE_NEWTIME },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) if (strcmp(t[i].name, type) == 0) return t[i].flag;
  die("unknown namespace type %s", type);
  return 0;
}

static const char *ns_type_name(int flag) {
  switch (flag) {
  case CLONE_NEWNS: return "mount"; case CLONE_NEWUTS: return "uts"; case CLONE_NEWIPC: return "ipc";
  case CLONE_NEWUSER: return "user"; case CLONE_NEWPID: return "pid"; case CLONE_NEWNET: return "network";
  case CLONE_NEWCGROUP: return "cgroup"; case CLONE_NEWTIME: return "time"; default: return "unknown";
  }
}

#ifndef NS_GET_NSTYPE
#define NS_GET_NSTYPE _IO(0xb7, 0x3)
#endif

/* Opens every namespace to join before joining any: once in the container's mount namespace,
 * /proc/PID/ns paths of the host would no longer resolve. The user namespace goes first.
 * config-linux.md "Namespaces": the runtime MUST generate an error when a path is not a
 * namespace of the type given; setns with that type makes the kernel refuse one too. */
static void join_namespaces(void) {
  int fds[16], is_user[16], flag[16], n = 0;
  char *names[16];
  for (int i = 0; i < nrecs && n < 16; i++) {
    if (strcmp(recs[i].key, "join") != 0) continue;
    char *f[2];
    if (fields(&recs[i], f, 2) < 2) die("bad join record");
    fds[n] = open(f[1], O_RDONLY | O_CLOEXEC);
    if (fds[n] < 0) die("open %s namespace %s: %s", f[0], f[1], strerror(errno));
    flag[n] = ns_flag(f[0]);
    int actual = ioctl(fds[n], NS_GET_NSTYPE);
    if (actual < 0)
      die("linux.namespaces: the %s path %s is not a namespace file (%s); give a /proc/PID/ns/%s file or a bind mount of one",
          f[0], f[1], strerror(errno), f[0]);
    if (actual != flag[n])
      die("linux.namespaces: the %s path %s is a %s namespace, not a %s namespace; give a path to a %s namespace",
          f[0], f[1], ns_type_name(actual), f[0], f[0]);
    is_user[n] = flag[n] == CLONE_NEWUSER;
    names[n++] = f[0];
  }
  for (int pass = 1; pass >= 0; pass--)
    for (int k = 0; k < n; k++) {
      if (is_user[k] != pass) continue;
      if (setns(fds[k], flag[k]) < 0) die("join %s namespace: %s", names[k], strerror(errno));
      close(fds[k]);
    }
}

/* Record "net" (BRIDGE, VETH, IFACE, IP/PREFIX[, GATEWAY]): plugs the network namespace
 * stage 2 was just cloned into, from here, in the bridge's namespace (netlink.h), while the
 * runtime places stage 2 and stage 2 mounts: the engine's network attach costs no exec. Says
 * "net" when done (the runtime waits for it before the container may run), or "error MSG". */
static void plug_network(pid_t pid) {
  struct record *r = NULL;
  for (int i = 0; i < nrecs; i++) if (strcmp(recs[i].key, "net") == 0) r = &recs[i];
  if (!r) return;
  char *f[5];
  int n = fields(r, f, 5);
  if (n < 4) die("net: expected BRIDGE, VETH, IFACE, IP/PREFIX[, GATEWAY]");
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  int host = nl_socket();
  const char *step = "opening the namespace";
  int err = ns < 0 || host < 0 ? errno : nl_attach(host, ns, f[0], f[1], f[2], f[3], n > 4 && *f[4] ? f[4] : NULL, &step);
  if (ns >= 0) close(ns);
  if (host >= 0) close(host);
  if (!err) {
    say("net\n");
    return;
  }
  /* As die(), but stage 2 is left alive: the runtime, which reads this line before it lets the
   * container run, kills it. (Killed here, stage 2 would close the socket while the runtime may
   * still write the plan's body or act on the pid, failing there before it reads the reason.) */
  char line[512];
  int len = snprintf(line, sizeof line, "error attaching the container to bridge %s: %s: %s\n", f[0], step, strerror(err));
  if (write(SYNC_FD, line, (size_t)len) < 0) { /* runtime gone */ }
  fprintf(stderr, "berth-init: %s", line + 6);
  _exit(1);
}

int main(void) {
  read_plan();
  connect_console();
  join_namespaces();

  if (get("timens")) {
    if (unshare(CLONE_NEWTIME) < 0) die("unshare time namespace: %s", strerror(errno));
    const char *offsets = get("time_offsets");
    if (offsets) write_file("/proc/self/timens_offsets", offsets);
  }

  if (!get("exec")) fifo = open_exec_fifo(&fifo_dummy);
  unsigned long flags = (unsigned long)get_num("clone", 0);
  pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
  if (pid < 0) die("clone into new namespaces (flags 0x%lx): %s", flags, strerror(errno));
  if (pid == 0) {
    in_child = 1;
    if (forked) read_plan();
    container_main();
    _exit(1);
  }
  child_pid = pid;
  say("pid %d\n", pid);
  plug_network(pid);
  if (!get("keep")) return 0;

  close(SYNC_FD);
  int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], forward_signal);
  int status;
  for (;;) {
    pid_t w = waitpid(pid, &status, 0);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return 1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}
