/*
 * berth front end. `berth run` repeated with the same arguments, environment and image runs
 * here, without Node: it replays the run plan the TypeScript CLI wrote the first time
 * (src/engine/containers/run-plan.ts says what a plan holds and when one is written). Every
 * other command, and a run without a plan or whose plan no longer holds, is handed to the
 * bundled CLI (exec node), which writes the plan when the run can be repeated.
 *
 * What a hit does, in the CLI's own order (engine.ts create and start, runtime/create.ts):
 *   1. a lease on the image's snapshots; the plan's checks (the store's index.json, the host
 *      files copied into the container, the snapshots and bind sources): any change is a miss;
 *   2. the container's directory (made aside with its `creating` marker, renamed into place),
 *      its name link, its files as the CLI wrote them, with this container's id, name and time;
 *   3. berth-monitor with berth-init under it; berth-init is sent the same plan bytes, and once
 *      it reports the container's pid, the same cgroup settings are written, "go" is sent,
 *      the runtime's record is written; at "ready" the exec fifo starts the process;
 *   4. attached: signals go to the container's process and the monitor's status is ours;
 *      detached (-d): the id is printed.
 * A failure after step 2 is reported in one line (exit 125) and what was made is removed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "remove-tree.h"

#ifndef BERTH_NODE
#define BERTH_NODE "node"
#endif

#define PLAN_VERSION "1"

extern char **environ;

static char pkg[4096]; /* the package directory (native/build/berth's grandparent's parent) */

/* ---- handing the command to Node ---- */

static void trace(const char *what) {
  if (getenv("BERTH_RUN_PLAN_TRACE")) fprintf(stderr, "berth: run plan: %s\n", what);
}

static void exec_node(char **argv, const char *plan_path, const char *key_hex) {
  if (plan_path) trace("miss: the CLI runs it (and writes the plan when it can)");
  char cli[4200];
  snprintf(cli, sizeof cli, "%s/bin/berth.cjs", pkg);
  int argc = 0;
  while (argv[argc]) argc++;
  char **args = calloc((size_t)argc + 4, sizeof *args);
  if (!args) { perror("berth"); _exit(125); }
  const char *node = getenv("BERTH_NODE") ? getenv("BERTH_NODE") : BERTH_NODE;
  args[0] = (char *)node;
  args[1] = "--"; /* Node 20 would read a later --env-file as its own (nodejs/node#54232) */
  args[2] = cli;
  for (int i = 1; i < argc; i++) args[i + 2] = argv[i];
  if (plan_path && key_hex) {
    setenv("BERTH_RUN_PLAN", plan_path, 1);
    setenv("BERTH_RUN_KEY", key_hex, 1);
  }
  execvp(node, args);
  if (strcmp(node, "node") != 0) { args[0] = "node"; execvp("node", args); }
  fprintf(stderr, "berth: cannot run node (%s): %s; set BERTH_NODE to the node binary\n", node, strerror(errno));
  _exit(125);
}

/* ---- small helpers ---- */

struct buf { char *p; size_t n, cap; };

static void put(struct buf *b, const void *data, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { perror("berth"); _exit(125); }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void puts0(struct buf *b, const char *s) { put(b, s, strlen(s) + 1); }

static int read_file(const char *path, struct buf *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char chunk[65536];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof chunk)) > 0) put(out, chunk, (size_t)n);
  close(fd);
  return n < 0 ? -1 : 0;
}

static int write_all(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Written aside, then renamed (as runtime/state.ts writeAtomic); fsync'd when durable. */
static int write_atomic(const char *path, const void *data, size_t n, mode_t mode, int durable) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return -1;
  if (fchmod(fd, mode) < 0 || write_all(fd, data, n) < 0 || (durable && fsync(fd) < 0)) {
    int e = errno;
    close(fd);
    unlink(tmp);
    errno = e;
    return -1;
  }
  close(fd);
  if (rename(tmp, path) < 0) { int e = errno; unlink(tmp); errno = e; return -1; }
  return 0;
}

static void hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) { out[2 * i] = digits[in[i] >> 4]; out[2 * i + 1] = digits[in[i] & 15]; }
  out[2 * n] = 0;
}

static void random_hex(char *out, size_t bytes) {
  unsigned char r[64];
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(r + got, bytes - got, 0);
    if (n < 0) { if (errno == EINTR) continue; perror("berth: getrandom"); _exit(125); }
    got += (size_t)n;
  }
  hex(r, bytes, out);
}

/* ISO 8601 with milliseconds, as JavaScript's Date.prototype.toISOString. */
static void iso_now(char out[25], long long *ms_out) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  if (ms_out) *ms_out = ms;
  time_t sec = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char full[96];
  snprintf(full, sizeof full, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
  memcpy(out, full, 24);
  out[24] = 0;
}

/* Fields 3 (its state) and 22 (its start time) of /proc/PID/stat, as runtime/state.ts procStat;
 * -1 when there is no such process. */
static int proc_stat(pid_t pid, char *state, unsigned long long *start) {
  char path[64];
  struct buf b = {0};
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if (read_file(path, &b) < 0 || !b.p) { free(b.p); return -1; }
  char *p = strrchr(b.p, ')');
  *state = p && p[1] == ' ' ? p[2] : '?';
  *start = 0;
  if (p) {
    p += 2;
    for (int field = 3; field < 22 && p; field++) { p = strchr(p, ' '); if (p) p++; }
    if (p) *start = strtoull(p, NULL, 10);
  }
  free(b.p);
  return 0;
}

static unsigned long long start_time_of(pid_t pid) {
  char state;
  unsigned long long start;
  return proc_stat(pid, &state, &start) < 0 ? 0 : start;
}

/* runtime/state.ts isAlive: that process, and not a zombie. */
static int process_alive(pid_t pid, unsigned long long start) {
  char state;
  unsigned long long now;
  return pid > 0 && proc_stat(pid, &state, &now) == 0 && now == start && state != 'Z' && state != 'X';
}

/* ---- the plan ---- */

struct rec { const char *key; char *val; size_t len; };
struct plan { struct rec *r; size_t n; struct buf raw; };

/* "KEY LEN\nVALUE\n" records (runtime/plan.ts encodeRecords), until "end 0" at the top level. */
static int parse_plan(struct plan *pl) {
  char *p = pl->raw.p, *end = pl->raw.p + pl->raw.n;
  size_t cap = 0;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return -1;
    *nl = 0;
    char *sp = strchr(p, ' ');
    if (!sp) return -1;
    *sp = 0;
    char *e;
    unsigned long len = strtoul(sp + 1, &e, 10);
    if (*e || (size_t)(end - (nl + 1)) < len + 1 || nl[1 + len] != '\n') return -1;
    if (pl->n == cap) {
      cap = cap ? cap * 2 : 64;
      struct rec *r = realloc(pl->r, cap * sizeof *r);
      if (!r) return -1;
      pl->r = r;
    }
    pl->r[pl->n++] = (struct rec){ p, nl + 1, len };
    nl[1 + len] = 0; /* every value ends in NUL for the string helpers */
    p = nl + 2 + len;
    if (!strcmp(pl->r[pl->n - 1].key, "end")) return 0;
  }
  return -1;
}

static struct rec *find(struct plan *pl, const char *key) {
  for (size_t i = 0; i < pl->n; i++) if (!strcmp(pl->r[i].key, key)) return &pl->r[i];
  return NULL;
}

static const char *value(struct plan *pl, const char *key) {
  struct rec *r = find(pl, key);
  return r ? r->val : NULL;
}

/*
 * Replaces every `from` by `to` in the whole plan (not in its key). Values of the same length are
 * replaced in place; another length rebuilds the record, which berth-init's own records (in
 * "init", length-prefixed) do not allow: -1, and the plan is not followed.
 */
static int substitute_in(struct plan *pl, const char *only, const char *from, const char *to) {
  size_t n = strlen(from), m = strlen(to);
  if (n == 0 || !strcmp(from, to)) return 0;
  for (size_t i = 0; i < pl->n; i++) {
    struct rec *r = &pl->r[i];
    if (!strcmp(r->key, "key") || (only && strcmp(r->key, only)) || !memmem(r->val, r->len, from, n)) continue;
    if (n == m) {
      for (char *p = r->val; (p = memmem(p, r->len - (size_t)(p - r->val), from, n)); p += n) memcpy(p, to, n);
      continue;
    }
    if (!strcmp(r->key, "init")) return -1;
    struct buf b = {0};
    char *p = r->val, *end = r->val + r->len, *hit;
    while ((hit = memmem(p, (size_t)(end - p), from, n))) {
      put(&b, p, (size_t)(hit - p));
      put(&b, to, m);
      p = hit + n;
    }
    put(&b, p, (size_t)(end - p));
    r->val = b.p; /* (the old value stays in the plan's buffer) */
    r->len = b.n;
  }
  return 0;
}

static int substitute(struct plan *pl, const char *from, const char *to) { return substitute_in(pl, NULL, from, to); }

/* Replaces the first `from` in the record (lengths given: the monitor's arguments hold NULs). */
static int replace_once(struct rec *r, const char *from, size_t n, const char *to, size_t m) {
  char *hit = r ? memmem(r->val, r->len, from, n) : NULL;
  if (!hit) return -1;
  struct buf b = {0};
  put(&b, r->val, (size_t)(hit - r->val));
  put(&b, to, m);
  put(&b, hit + n, r->len - (size_t)(hit - r->val) - n);
  r->val = b.p;
  r->len = b.n;
  return 0;
}

/*
 * The container's name, in the places the plan has it and nowhere else (a name may well be part
 * of anything else): its record, the name link, container.json's "name" and the monitor's -n
 * (the link it removes with --rm). -1 when the plan does not have it where it should.
 */
static int set_name(struct plan *pl, const char *old, const char *new) {
  struct rec *link = find(pl, "names-link"), *name = find(pl, "name"), *monitor = find(pl, "monitor"), *record = NULL;
  for (size_t i = 0; i < pl->n; i++) {
    struct rec *r = &pl->r[i];
    if (!strcmp(r->key, "cfile") && strstr(r->val, " container.json") && !strcmp(strstr(r->val, " container.json"), " container.json")) record = r;
  }
  size_t on = strlen(old), nn = strlen(new);
  if (!link || !name || !monitor || !record || strcmp(name->val, old) || link->len <= on || strcmp(link->val + link->len - on, old) || link->val[link->len - on - 1] != '/') return -1;
  struct buf from = {0}, to = {0};
  put(&from, "-n", 3); put(&from, link->val, link->len + 1);
  char *new_link;
  if (asprintf(&new_link, "%.*s%s", (int)(link->len - on), link->val, new) < 0) return -1;
  put(&to, "-n", 3); put(&to, new_link, strlen(new_link) + 1);
  /* (-n only with --rm.) */
  if (memmem(monitor->val, monitor->len, from.p, from.n) && replace_once(monitor, from.p, from.n, to.p, to.n) < 0) return -1;
  char *jf, *jt;
  if (asprintf(&jf, "\"name\":\"%s\"", old) < 0 || asprintf(&jt, "\"name\":\"%s\"", new) < 0) return -1;
  if (replace_once(record, jf, strlen(jf), jt, strlen(jt)) < 0) return -1;
  link->val = new_link;
  link->len = strlen(new_link);
  name->val = strdup(new);
  name->len = nn;
  return 0;
}

/* Whether what the plan read is as it was. */
static int checks_hold(struct plan *pl) {
  for (size_t i = 0; i < pl->n; i++) {
    struct rec *r = &pl->r[i];
    if (!strcmp(r->key, "check-exist")) {
      struct stat st;
      if (lstat(r->val, &st) < 0) return 0;
    } else if (!strcmp(r->key, "check-stat")) {
      unsigned long long dev, ino, size, mt;
      int off = 0;
      if (sscanf(r->val, "%llu %llu %llu %llu %n", &dev, &ino, &size, &mt, &off) != 4 || !off) return 0;
      struct stat st;
      if (stat(r->val + off, &st) < 0) return 0;
      unsigned long long now = (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec;
      if (dev != (unsigned long long)st.st_dev || ino != (unsigned long long)st.st_ino || size != (unsigned long long)st.st_size || mt != now) return 0;
    } else if (!strcmp(r->key, "check-content")) {
      size_t plen = strlen(r->val);
      const char *want = r->val + plen + 1;
      size_t wlen = r->len - plen - 1;
      struct buf b = {0};
      if (read_file(r->val, &b) < 0) b.n = 0;
      int same = b.n == wlen && (wlen == 0 || !memcmp(b.p, want, wlen));
      free(b.p);
      if (!same) return 0;
    }
  }
  return 1;
}

/* FNV-1a, 64 bits: the plan's file name (the plan holds the whole key, compared byte for byte). */
static uint64_t fnv1a(const char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 0x100000001b3ULL; }
  return h;
}

/* ---- the run ---- */

static pid_t container_pid, monitor_pid;
static int sig_proxy = 1;

static volatile sig_atomic_t pending_sig;

/* Our signals go to the container's process (the window size to the monitor); one that comes
 * before the process exists is passed on as soon as it does. */
static void forward(int sig) {
  pid_t to = sig == SIGWINCH ? monitor_pid : container_pid;
  if (to > 0) kill(to, sig);
  else if (sig != SIGWINCH) pending_sig = sig;
}

struct made {
  const char *cdir, *name_link, *rt_dir, *lease, *id;
  int reserved, named;
  /* The default network's: the endpoint's record, this run's marker and the holder's. */
  const char *endpoint, *pending_marker, *held_marker;
};

/* Undoes what this run made (a start that failed): as the CLI's create and start do. */
static void undo(struct plan *pl, struct made *m) {
  if (container_pid > 0) kill(container_pid, SIGKILL);
  if (monitor_pid > 0) { kill(monitor_pid, SIGKILL); while (waitpid(monitor_pid, NULL, 0) < 0 && errno == EINTR) {} }
  for (int i = 0; container_pid > 0 && i < 2000 && kill(container_pid, 0) == 0; i++) usleep(1000);
  for (size_t i = 0; i < pl->n; i++) {
    if (strcmp(pl->r[i].key, "cgroup-dir")) continue;
    for (int t = 0; t < 50 && rmdir(pl->r[i].val) < 0 && errno == EBUSY; t++) usleep(2000);
  }
  if (m->rt_dir) remove_tree(m->rt_dir);
  if (m->cdir && m->reserved) {
    char rootfs[4200], away[4200];
    snprintf(rootfs, sizeof rootfs, "%s/rootfs", m->cdir);
    umount2(rootfs, MNT_DETACH);
    snprintf(away, sizeof away, "%s", m->cdir);
    char *slash = strrchr(away, '/');
    if (slash) {
      snprintf(slash + 1, sizeof away - (size_t)(slash + 1 - away), ".removing-%s", m->id);
      if (rename(m->cdir, away) == 0) remove_tree(away);
    }
  }
  if (m->named) {
    char target[128];
    ssize_t n = readlink(m->name_link, target, sizeof target - 1);
    if (n > 0) { target[n] = 0; if (!strcmp(target, m->id)) unlink(m->name_link); }
  }
  if (m->lease) unlink(m->lease);
  /* (The records before the markers: markers.ts's invariant. The veth went with the namespace.) */
  if (m->endpoint) unlink(m->endpoint);
  if (m->held_marker) unlink(m->held_marker);
  if (m->pending_marker) unlink(m->pending_marker);
}

static struct plan *fail_plan;
static struct made *fail_made;
static const char *fail_name;

static void fail(const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "berth: cannot start container %s: %s\n", fail_name ? fail_name : "", msg);
  if (fail_plan && fail_made) undo(fail_plan, fail_made);
  _exit(125);
}

/* A line from berth-init's channel ("pid N", "net", "ready", "error MSG"); NULL at its end. */
static char *next_line(int fd, struct buf *in) {
  static size_t consumed;
  if (consumed) {
    memmove(in->p, in->p + consumed, in->n - consumed);
    in->n -= consumed;
    consumed = 0;
  }
  for (;;) {
    char *nl = in->n ? memchr(in->p, '\n', in->n) : NULL;
    if (nl) {
      *nl = 0;
      consumed = (size_t)(nl - in->p) + 1;
      return in->p;
    }
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return NULL;
    put(in, chunk, (size_t)n);
  }
}

/* berth-init says "net" once it plugged the network, whenever that is after "pid". */
static int net_plugged;

static char *expect(int fd, struct buf *in, const char *what) {
  for (;;) {
    char *line = next_line(fd, in);
    if (!line) fail("berth-init exited before \"%s\" (see its message above)", what);
    if (!strncmp(line, "error ", 6)) fail("%s", line + 6);
    if (!strcmp(line, "net")) {
      net_plugged = 1;
      if (strcmp(what, "net")) continue;
    }
    return line;
  }
}

/* Writes a template with "\x01P" (pid) and "\x01T" (start time) filled in. */
static int write_template(const char *path, const char *tpl, size_t len, pid_t pid, unsigned long long st) {
  struct buf b = {0};
  char num[32];
  for (size_t i = 0; i < len; i++) {
    if (tpl[i] == 1 && i + 1 < len && (tpl[i + 1] == 'P' || tpl[i + 1] == 'T')) {
      if (tpl[i + 1] == 'P') snprintf(num, sizeof num, "%d", (int)pid); else snprintf(num, sizeof num, "%llu", st);
      put(&b, num, strlen(num));
      i++;
    } else {
      put(&b, tpl + i, 1);
    }
  }
  int rc = write_atomic(path, b.p ? b.p : "", b.n, 0600, 0);
  free(b.p);
  return rc;
}

static const char *join2(const char *a, const char *b) {
  char *s;
  if (asprintf(&s, "%s/%s", a, b) < 0) { perror("berth"); _exit(125); }
  return s;
}

/*
 * `,"A","B"…` for the arguments, as JSON.stringify writes them (the plan's "\x01A"); -1 when an
 * argument is not valid UTF-8 (Node would read it otherwise: the CLI runs it).
 */
static int json_args(char **args, int n, struct buf *out) {
  for (int i = 0; i < n; i++) {
    const unsigned char *s = (const unsigned char *)args[i];
    put(out, ",\"", 2);
    for (size_t j = 0; s[j];) {
      unsigned char c = s[j];
      size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
      if (!len) return -1;
      uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
      for (size_t k = 1; k < len; k++) {
        if ((s[j + k] & 0xc0) != 0x80) return -1;
        cp = (cp << 6) | (s[j + k] & 0x3fu);
      }
      if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
      if (len > 1) { put(out, s + j, len); j += len; continue; }
      j++;
      char esc[8];
      if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(out, esc, 2); }
      else if (c == '\b') put(out, "\\b", 2);
      else if (c == '\f') put(out, "\\f", 2);
      else if (c == '\n') put(out, "\\n", 2);
      else if (c == '\r') put(out, "\\r", 2);
      else if (c == '\t') put(out, "\\t", 2);
      else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); put(out, esc, 6); }
      else put(out, &c, 1);
    }
    put(out, "\"", 1);
  }
  return 0;
}


/* ---- the default bridge network (engine/network: store.ts, lock.ts, markers.ts) ---- */

/* A dotted quad exactly as formatIPv4 writes it; -1 otherwise. */
static int parse_ipv4(const char *s, uint32_t *out) {
  unsigned a, b, c, d;
  char back[20];
  if (sscanf(s, "%3u.%3u.%3u.%3u", &a, &b, &c, &d) != 4 || a > 255 || b > 255 || c > 255 || d > 255) return -1;
  snprintf(back, sizeof back, "%u.%u.%u.%u", a, b, c, d);
  if (strcmp(back, s)) return -1;
  *out = (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | (uint32_t)d;
  return 0;
}

static void format_ipv4(uint32_t ip, char out[16]) {
  snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

/*
 * lock.ts: NET-DIR/lock, made whole by link(2) of a file holding "PID START\n". A live owner is
 * waited for (1 ms, then 2 ms: a replay holds it for a readdir and a link, and 50 replays at once
 * took 3.5 s instead of 0.9 s with lock.ts's 20 ms); 0 once ours. -1 when the lock cannot be taken here: its
 * owner died (the CLI breaks such locks, one breaker at a time) or an error.
 */
static int net_lock(const char *path) {
  char tmp[4200], me[64];
  snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
  int n = snprintf(me, sizeof me, "%d %llu\n", (int)getpid(), start_time_of(getpid()));
  long waited = 0;
  for (int delay = 1; waited < 600000; ) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -1;
    int ok = write_all(fd, me, (size_t)n) == 0;
    close(fd);
    int rc = ok ? link(tmp, path) : -1, err = errno;
    unlink(tmp);
    if (rc == 0) return 0;
    if (!ok || err != EEXIST) return -1;
    struct buf owner = {0};
    if (read_file(path, &owner) < 0) { int e = errno; free(owner.p); if (e == ENOENT) continue; return -1; }
    int pid = 0, used = 0;
    unsigned long long start = 0;
    int parsed = owner.p && sscanf(owner.p, "%d %llu\n%n", &pid, &start, &used) == 2 && (size_t)used == owner.n && owner.p[owner.n - 1] == '\n';
    free(owner.p);
    if (parsed && !process_alive(pid, start)) return -1;
    usleep((useconds_t)delay * 1000);
    waited += delay;
    delay = delay * 2 > 2 ? 2 : delay * 2;
  }
  return -1;
}

/* A template with "\x01I" (the address), "\x01V" (the veth) and "\x01N" (the name) filled in. */
static void fill_net(struct buf *out, const char *tpl, size_t len, const char *ip, const char *veth, const char *name) {
  for (size_t i = 0; i < len; i++) {
    const char *with = NULL;
    if (tpl[i] == 1 && i + 1 < len) with = tpl[i + 1] == 'I' ? ip : tpl[i + 1] == 'V' ? veth : tpl[i + 1] == 'N' ? name : NULL;
    if (with) { put(out, with, strlen(with)); i++; }
    else put(out, tpl + i, 1);
  }
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/*
 * NetworkStore.allocate, under the lock: the lowest host address of the subnet that is not the
 * gateway and has no endpoint file (any name counts, one left unreadable too), taken by link(2)
 * of its record. 0 with the address in `ip` and the file in `*file`; -1 with errno.
 */
static int net_allocate(const char *epdir, const char *subnet, const char *gateway, const struct rec *tpl,
                        const char *veth, const char *name, char ip[16], char **file) {
  char base_s[20];
  unsigned prefix;
  const char *slash = strchr(subnet, '/');
  uint32_t base, gw;
  if (!slash || (size_t)(slash - subnet) >= sizeof base_s || sscanf(slash + 1, "%u", &prefix) != 1 || prefix < 8 || prefix > 30) { errno = EINVAL; return -1; }
  snprintf(base_s, sizeof base_s, "%.*s", (int)(slash - subnet), subnet);
  if (parse_ipv4(base_s, &base) < 0 || parse_ipv4(gateway, &gw) < 0) { errno = EINVAL; return -1; }
  uint32_t mask = prefix ? ~(uint32_t)0 << (32 - prefix) : 0, bcast = (base & mask) | ~mask;
  base &= mask;
  uint32_t *used = NULL;
  size_t nused = 0, cap = 0;
  DIR *d = opendir(epdir);
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));) {
    uint32_t a;
    if (e->d_name[0] == '.' || parse_ipv4(e->d_name, &a) < 0) continue;
    if (nused == cap) {
      cap = cap ? cap * 2 : 256;
      uint32_t *u = realloc(used, cap * sizeof *u);
      if (!u) { closedir(d); free(used); errno = ENOMEM; return -1; }
      used = u;
    }
    used[nused++] = a;
  }
  closedir(d);
  qsort(used, nused, sizeof *used, cmp_u32);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s/.tmp-%d", epdir, (int)getpid());
  size_t k = 0;
  for (uint32_t a = base + 1; a < bcast; a++) {
    while (k < nused && used[k] < a) k++;
    if (a == gw || (k < nused && used[k] == a)) continue;
    format_ipv4(a, ip);
    struct buf rec = {0};
    fill_net(&rec, tpl->val, tpl->len, ip, veth, name);
    if (asprintf(file, "%s/%s", epdir, ip) < 0) { free(rec.p); free(used); return -1; }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int ok = fd >= 0 && write_all(fd, rec.p, rec.n) == 0;
    if (fd >= 0) close(fd);
    free(rec.p);
    int rc = ok ? link(tmp, *file) : -1, err = errno;
    unlink(tmp);
    if (rc == 0) { free(used); return 0; }
    free(*file);
    *file = NULL;
    if (!ok || err != EEXIST) { free(used); errno = err; return -1; }
  }
  free(used);
  errno = ENOSPC;
  return -1;
}

/*
 * The "net" record of berth-init's plan head (BRIDGE, VETH, IFACE, IP/PREFIX, GATEWAY: runtime/
 * plan.ts) with this run's veth and address, the record's length rewritten. -1 when the head has
 * no such record or it is not the one the plan says.
 */
static int set_net_record(struct rec *init, const char *old_veth, const char *old_cidr, const char *veth, const char *cidr) {
  char *p = init->val, *end = init->val + init->len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p)), *sp = nl ? memchr(p, ' ', (size_t)(nl - p)) : NULL;
    if (!sp) return -1;
    char *e;
    unsigned long len = strtoul(sp + 1, &e, 10);
    char *v = nl + 1;
    if (e != nl || (size_t)(end - v) < len + 1 || v[len] != '\n') return -1;
    size_t klen = (size_t)(sp - p);
    if ((klen == 4 && !memcmp(p, "fork", 4)) || (klen == 3 && !memcmp(p, "end", 3))) return -1;
    if (klen == 3 && !memcmp(p, "net", 3)) {
      char *f[5];
      int n = 0;
      char *copy = malloc(len + 1);
      if (!copy) return -1;
      memcpy(copy, v, len);
      copy[len] = 0;
      for (size_t off = 0; off <= len && n < 5; off += strlen(copy + off) + 1) f[n++] = copy + off;
      if (n != 5 || strcmp(f[1], old_veth) || strcmp(f[3], old_cidr)) { free(copy); return -1; }
      struct buf val = {0}, out = {0};
      puts0(&val, f[0]); puts0(&val, veth); puts0(&val, f[2]); puts0(&val, cidr); put(&val, f[4], strlen(f[4]));
      char hdr[32];
      snprintf(hdr, sizeof hdr, "net %zu\n", val.n);
      put(&out, init->val, (size_t)(p - init->val));
      put(&out, hdr, strlen(hdr));
      put(&out, val.p, val.n);
      put(&out, v + len, (size_t)(end - (v + len)));
      free(copy);
      free(val.p);
      init->val = out.p;
      init->len = out.n;
      return 0;
    }
    p = v + len + 1;
  }
  return -1;
}

/* markers.ts: an empty file ID@pending.PID.START (attaching) or ID@PID.START (the namespace's holder). */
static char *make_marker(const char *net_dir, const char *id, const char *pending, pid_t pid, unsigned long long start) {
  char *dir, *path;
  if (asprintf(&dir, "%s/attached", net_dir) < 0) return NULL;
  mkdir(dir, 0700);
  if (asprintf(&path, "%s/%s@%s%d.%llu", dir, id, pending, (int)pid, start) < 0) { free(dir); return NULL; }
  free(dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) { free(path); return NULL; }
  close(fd);
  return path;
}

static int replay(struct plan *pl, char **argv, const char *key_hex, const char *plan_path, const char *given, char **tail, int ntail, int templated) {
  const char *cdirs = value(pl, "containers-dir"), *leases = value(pl, "leases-dir");
  const char *old_id = value(pl, "id"), *old_name = value(pl, "name"), *lease_chains = value(pl, "lease");
  const char *names_link = value(pl, "names-link"), *rt_dir = value(pl, "rt-dir"), *rt_bundle = value(pl, "rt-bundle");
  struct rec *monitor = find(pl, "monitor"), *init = find(pl, "init"), *rt_json = find(pl, "rt-json"), *rt_text = find(pl, "rt-text");
  const char *attach_s = value(pl, "attach"), *detach_s = value(pl, "detach"), *auto_rm = value(pl, "auto-remove");
  if (!cdirs || !leases || !old_id || strlen(old_id) != 64 || !old_name || !lease_chains || !names_link || !rt_dir || !rt_bundle ||
      !monitor || !init || !rt_json || !rt_text || !attach_s || !detach_s || !auto_rm) {
    exec_node(argv, plan_path, key_hex);
  }
  sig_proxy = !value(pl, "sig-proxy") || strcmp(value(pl, "sig-proxy"), "0");
  int attach = !strcmp(attach_s, "1"), detach = !strcmp(detach_s, "1");

  /* The command's arguments where the plan left them out. */
  struct buf tail_json = {0}, tail_recs = {0};
  const char *argtail = "argtail 0\n\n";
  char *tail_at = templated ? memmem(init->val, init->len, argtail, strlen(argtail)) : NULL;
  if (templated) {
    put(&tail_json, "", 0);
    if (!tail_at || json_args(tail, ntail, &tail_json) < 0) exec_node(argv, plan_path, key_hex);
    for (int i = 0; i < ntail; i++) {
      char hdr[32];
      snprintf(hdr, sizeof hdr, "arg %zu\n", strlen(tail[i]));
      put(&tail_recs, hdr, strlen(hdr));
      put(&tail_recs, tail[i], strlen(tail[i]));
      put(&tail_recs, "\n", 1);
    }
  }

  /* 1. The lease first (prune keeps leased snapshots), then the checks. */
  long long ms;
  char now[25], lease_path[4200], lease_rand[13];
  iso_now(now, &ms);
  random_hex(lease_rand, 6);
  mkdir(leases, 0755);
  snprintf(lease_path, sizeof lease_path, "%s/%d-%s.json", leases, (int)getpid(), lease_rand);
  char *lease_doc;
  if (asprintf(&lease_doc, "{\"pid\":%d,\"created\":%lld,\"chains\":%s}", (int)getpid(), ms, lease_chains) < 0) exec_node(argv, plan_path, key_hex);
  if (write_atomic(lease_path, lease_doc, strlen(lease_doc), 0644, 0) < 0) exec_node(argv, plan_path, key_hex);
  if (!checks_hold(pl)) { trace("what it read has changed"); unlink(lease_path); exec_node(argv, plan_path, key_hex); }
  trace("hit");

  /* 2. This container's id, name and time in place of the plan's. */
  char id[65], short_old[13], short_new[13], name[64];
  random_hex(id, 32);
  if (getenv("BERTH_RUN_PLAN_TRACE")) fprintf(stderr, "berth: run plan: container %s\n", id);
  snprintf(short_old, sizeof short_old, "%.12s", old_id);
  snprintf(short_new, sizeof short_new, "%.12s", id);
  /* A name given with --name (the key has a placeholder for it) is this run's; a plan written
   * for a generated one gets a generated one. */
  int named = given != NULL;
  if (named != (value(pl, "name-given") != NULL)) { unlink(lease_path); exec_node(argv, plan_path, key_hex); }
  char *old_id_copy = strdup(old_id);
  substitute(pl, old_id_copy, id);
  substitute(pl, short_old, short_new);
  for (size_t i = 0; i < pl->n; i++) if (!strcmp(pl->r[i].key, "time")) { char *t = strdup(pl->r[i].val); substitute(pl, t, now); free(t); }

  struct made m = { .lease = lease_path, .id = id, .name_link = names_link };
  char cdir[4200], fresh[4200];
  snprintf(cdir, sizeof cdir, "%s/%s", cdirs, id);
  /* (Named with its owner too, as ContainerStore.reserve: a sweep knows whose it is before the
   * marker is written.) */
  unsigned long long me_start = start_time_of(getpid());
  snprintf(fresh, sizeof fresh, "%s/.new-%s.%d.%llu", cdirs, id, (int)getpid(), me_start);
  if (mkdir(fresh, 0711) < 0) { unlink(lease_path); exec_node(argv, plan_path, key_hex); }
  chmod(fresh, 0711);
  char marker[128];
  snprintf(marker, sizeof marker, "%d %llu\n", (int)getpid(), me_start);
  if (write_atomic(join2(fresh, "creating"), marker, strlen(marker), 0600, 0) < 0 || rename(fresh, cdir) < 0) {
    remove_tree(fresh);
    unlink(lease_path);
    exec_node(argv, plan_path, key_hex);
  }
  m.cdir = cdir;
  m.reserved = 1;
  /* The name: the given one, or one drawn (again on a clash, as the CLI does); a given one that
   * is taken goes to the CLI, which reclaims it or says whose it is. */
  for (int attempt = 0;; attempt++) {
    char drawn[16] = "berth_";
    random_hex(drawn + 6, 4);
    const char *want = named ? given : drawn;
    if (set_name(pl, value(pl, "name"), want) < 0) { m.name_link = NULL; undo(pl, &m); exec_node(argv, plan_path, key_hex); }
    names_link = value(pl, "names-link");
    m.name_link = names_link;
    if (symlink(id, names_link) == 0) break;
    if (errno != EEXIST || named || attempt >= 5) {
      m.name_link = NULL;
      undo(pl, &m);
      exec_node(argv, plan_path, key_hex);
    }
  }
  m.named = 1;
  snprintf(name, sizeof name, "%s", value(pl, "name"));
  fail_plan = pl;
  fail_made = &m;
  fail_name = name;

  /* The command's arguments go in last, so that nothing above replaces in them. (Only in the
   * container's files: "\x01A" may well be two bytes of the seccomp filter.) */
  if (templated) substitute_in(pl, "cfile", "\x01" "A", tail_json.p);

  /* The default bridge network: an address of this run's own, as the CLI's attach takes one
   * (engine/network/index.ts attachInTx): its marker says we are attaching before any record
   * changes; under the network's lock, the lowest free address's record; the veth named as
   * vethName names it. The bridge, its rules and the network's record are as the plan found them
   * (its checks). A lock whose owner died is the CLI's to break: the run goes to the CLI. */
  const char *net_dir = value(pl, "net-dir");
  struct rec *net_endpoint = find(pl, "net-endpoint"), *net_hosts = find(pl, "net-hosts"), *net_resolv = find(pl, "net-resolv");
  char ip[16] = "", veth[16] = "", cidr[40] = "";
  if (net_dir) {
    const char *net_name = value(pl, "net-name"), *subnet = value(pl, "net-subnet"), *gateway = value(pl, "net-gateway");
    const char *old_cidr = value(pl, "net-ip"), *old_veth = value(pl, "net-veth");
    if (!net_name || !subnet || !gateway || !old_cidr || !old_veth || !net_endpoint || !net_hosts || !net_resolv || !strchr(subnet, '/'))
      fail("a bad run plan (%s): remove it", plan_path);
    struct buf vkey = {0};
    puts0(&vkey, id);
    put(&vkey, net_name, strlen(net_name));
    snprintf(veth, sizeof veth, "vb%012llx", (unsigned long long)(fnv1a(vkey.p, vkey.n) >> 16));
    free(vkey.p);
    m.pending_marker = make_marker(net_dir, id, "pending.", getpid(), start_time_of(getpid()));
    if (!m.pending_marker) fail("cannot mark the network attach in %s/attached: %s", net_dir, strerror(errno));
    const char *lock = join2(net_dir, "lock");
    if (net_lock(lock) < 0) { trace("the network's lock is not free"); undo(pl, &m); exec_node(argv, plan_path, key_hex); }
    char *epfile = NULL;
    const char *epdir = join2(join2(net_dir, "endpoints"), net_name);
    mkdir(join2(net_dir, "endpoints"), 0700);
    mkdir(epdir, 0700);
    int rc = net_allocate(epdir, subnet, gateway, net_endpoint, veth, name, ip, &epfile);
    int err = errno;
    unlink(lock);
    if (rc < 0 && err == ENOSPC) fail("network %s (%s) has no free address left: remove containers or use a larger subnet", net_name, subnet);
    if (rc < 0) fail("network %s: cannot record the address: %s", net_name, strerror(err));
    m.endpoint = epfile;
    snprintf(cidr, sizeof cidr, "%s%s", ip, strchr(old_cidr, '/'));
    if (set_net_record(init, old_veth, old_cidr, veth, cidr) < 0) fail("a bad run plan (%s): remove it", plan_path);
    if (templated) tail_at = memmem(init->val, init->len, argtail, strlen(argtail));
  }

  /* The container's files, as create wrote them. */
  for (size_t i = 0; i < pl->n; i++) {
    struct rec *r = &pl->r[i];
    if (!strcmp(r->key, "cdir")) {
      unsigned mode;
      int off = 0;
      if (sscanf(r->val, "%o %n", &mode, &off) != 1 || !off) fail("a bad run plan (%s): remove it", plan_path);
      const char *path = join2(cdir, r->val + off);
      if (mkdir(path, mode) < 0 && errno != EEXIST) fail("mkdir %s: %s", path, strerror(errno));
      chmod(path, mode);
    } else if (!strcmp(r->key, "cfile")) {
      unsigned mode, durable;
      int off = 0;
      if (sscanf(r->val, "%o %u %n", &mode, &durable, &off) != 2 || !off) fail("a bad run plan (%s): remove it", plan_path);
      const char *rel = r->val + off;
      size_t hdr = strlen(r->val) + 1;
      const char *path = join2(cdir, rel);
      /* (On the default network: as the attach rewrote them.) */
      struct rec *as_attached = !net_dir ? NULL : !strcmp(rel, "hosts") ? net_hosts : !strcmp(rel, "resolv.conf") ? net_resolv : NULL;
      struct buf filled = {0};
      if (as_attached) fill_net(&filled, as_attached->val, as_attached->len, ip, veth, name);
      if (write_atomic(path, as_attached ? (filled.p ? filled.p : "") : r->val + hdr, as_attached ? filled.n : r->len - hdr, mode, (int)durable) < 0)
        fail("cannot write %s: %s", path, strerror(errno));
      free(filled.p);
    } else if (!strcmp(r->key, "clink")) {
      const char *target = r->val;
      const char *path = join2(cdir, r->val + strlen(r->val) + 1);
      if (symlink(target, path) < 0) fail("symlink %s: %s", path, strerror(errno));
    }
  }
  unlink(join2(cdir, "creating"));
  unlink(lease_path);
  m.lease = NULL;

  /* 3. start: the runtime's directory, the monitor with berth-init, the plan. */
  for (size_t i = 0; i < pl->n; i++) if (!strcmp(pl->r[i].key, "ensure-dir")) mkdir(pl->r[i].val, 0700);
  char *rt_parent = strdup(rt_dir);
  char *slash = strrchr(rt_parent, '/');
  if (slash) { *slash = 0; mkdir(rt_parent, 0711); }
  if (mkdir(rt_dir, 0711) < 0) fail("container %s already exists (in %s); delete it first or choose another id", id, rt_parent);
  chmod(rt_dir, 0711);
  m.rt_dir = rt_dir;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) fail("socketpair: %s", strerror(errno));
  size_t argc = 0;
  char *margv[256];
  for (char *p = monitor->val; p < monitor->val + monitor->len && argc < 255; p += strlen(p) + 1) margv[argc++] = p;
  margv[argc] = NULL;
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t child = fork();
  if (child < 0) fail("fork: %s", strerror(errno));
  if (child == 0) {
    /* As Node's spawn: the child starts with every signal's default action and none blocked
     * (a berth started under nohup must not pass SIGHUP's SIG_IGN on to the container). */
    for (int sig = 1; sig < NSIG; sig++) if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (!attach) {
      setsid();
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); if (null > 2) close(null); }
    }
    if (dup2(sv[1], 3) < 0) _exit(125);
    execv(margv[0], margv);
    fprintf(stderr, "berth: cannot run %s: %s\n", margv[0], strerror(errno));
    _exit(125);
  }
  monitor_pid = child;
  close(sv[1]);
  int ch = sv[0];
  if (attach) {
    struct sigaction sa = { .sa_handler = forward, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
    if (sig_proxy) for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
    sigaction(SIGWINCH, &sa, NULL);
  }
  signal(SIGPIPE, SIG_IGN);
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (write_atomic(join2(rt_dir, "bundle"), rt_bundle, strlen(rt_bundle), 0600, 0) < 0) fail("cannot write the runtime's state in %s: %s", rt_dir, strerror(errno));
  /* (A write that fails: berth-init is gone, and its message follows.) */
  if (tail_at) {
    size_t before = (size_t)(tail_at - init->val), skip = before + strlen(argtail);
    if (write_all(ch, init->val, before) == 0 && write_all(ch, tail_recs.p, tail_recs.n) == 0) write_all(ch, init->val + skip, init->len - skip);
  } else {
    write_all(ch, init->val, init->len);
  }
  struct buf in = {0};
  char *line = expect(ch, &in, "pid");
  if (strncmp(line, "pid ", 4)) fail("berth-init: unexpected message \"%s\"", line);
  container_pid = (pid_t)atoi(line + 4);
  if (container_pid <= 0) fail("berth-init: unexpected message \"%s\"", line);
  unsigned long long st = start_time_of(container_pid);
  for (size_t i = 0; i < pl->n; i++) {
    struct rec *r = &pl->r[i];
    if (strcmp(r->key, "cgwrite")) continue;
    const char *v = r->val + strlen(r->val) + 1;
    int fd = open(r->val, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0 || write_all(fd, v, strlen(v)) < 0) fail("cannot write \"%s\" to %s: %s", v, r->val, strerror(errno));
    close(fd);
  }
  const char *oom = value(pl, "oom");
  if (oom) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)container_pid);
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0 || write_all(fd, oom, strlen(oom)) < 0) fail("cannot write %s: %s", path, strerror(errno));
    close(fd);
  }
  /* markers.ts markAttached: the container's process holds the namespace (and the endpoint). */
  if (net_dir) {
    m.held_marker = make_marker(net_dir, id, "", container_pid, st);
    if (!m.held_marker) fail("cannot mark the network attach in %s/attached: %s", net_dir, strerror(errno));
    unlink(m.pending_marker);
    m.pending_marker = NULL;
  }
  if (write_all(ch, "go\n", 3) < 0) { /* as above */ }
  if (write_template(join2(rt_dir, "state.json"), rt_json->val, rt_json->len, container_pid, st) < 0 ||
      write_template(join2(rt_dir, "state.txt"), rt_text->val, rt_text->len, container_pid, st) < 0) {
    fail("cannot write the runtime's state in %s: %s", rt_dir, strerror(errno));
  }
  line = expect(ch, &in, "ready");
  if (strcmp(line, "ready")) fail("berth-init: unexpected message \"%s\"", line);
  /* The container may not run before its network is plugged. */
  if (net_dir && !net_plugged && strcmp(expect(ch, &in, "net"), "net")) fail("berth-init: expected \"net\"");
  close(ch);
  char started[25];
  iso_now(started, NULL);
  char state[512];
  int sn = snprintf(state, sizeof state, "{\"status\":\"running\",\"pid\":%d,\"pidStart\":%llu,\"monitorPid\":%d,\"startedAt\":\"%s\"}",
                    (int)container_pid, st, (int)monitor_pid, started);
  if (write_atomic(join2(cdir, "state.json"), state, (size_t)sn, 0600, 0) < 0) fail("cannot write %s/state.json: %s", cdir, strerror(errno));
  /* runtime.md "start": the process runs once the exec fifo is written. */
  const char *fifo = join2(rt_dir, "exec.fifo");
  int ff = open(fifo, O_WRONLY | O_CLOEXEC);
  if (ff < 0 || write_all(ff, "0", 1) < 0) fail("%s: %s", fifo, strerror(errno));
  close(ff);
  unlink(fifo);
  fail_plan = NULL;
  if (pending_sig) kill(container_pid, pending_sig);

  /* 4. Detached: the id; attached: the container's status, as the monitor reports it. */
  if (detach || !attach) {
    printf("%s\n", id);
    fflush(stdout);
    return 0;
  }
  int ws = 0;
  while (waitpid(monitor_pid, &ws, 0) < 0) if (errno != EINTR) { ws = 255 << 8; break; }
  int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
  /* As the CLI's finish(): the address goes back (the veth went with the namespace), then the
   * marker. (Unlinked whole: an allocation meanwhile sees the address taken or free.) */
  if (m.endpoint) unlink(m.endpoint);
  if (m.held_marker) unlink(m.held_marker);
  struct stat dst;
  if (strcmp(auto_rm, "1") && stat(cdir, &dst) == 0) {
    /* As the CLI's finish(): the exit file, then the state. */
    long long fin;
    char finished[25], exitline[64];
    iso_now(finished, &fin);
    int en = snprintf(exitline, sizeof exitline, "%d %lld\n", code, fin * 1000000LL);
    write_atomic(join2(cdir, "exit"), exitline, (size_t)en, 0644, 0);
    sn = snprintf(state, sizeof state, "{\"status\":\"exited\",\"pid\":%d,\"pidStart\":%llu,\"monitorPid\":%d,\"startedAt\":\"%s\",\"exitCode\":%d,\"finishedAt\":\"%s\"}",
                  (int)container_pid, st, (int)monitor_pid, started, code, finished);
    write_atomic(join2(cdir, "state.json"), state, (size_t)sn, 0600, 0);
  }
  return code;
}

/* Reads a plan that root wrote and nobody else can change; 0 when there is none such. */
static int load_plan(const char *path, struct plan *pl) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return 0;
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022) || !S_ISREG(st.st_mode)) { close(fd); return 0; }
  char chunk[65536];
  ssize_t r;
  while ((r = read(fd, chunk, sizeof chunk)) > 0) put(&pl->raw, chunk, (size_t)r);
  close(fd);
  return r == 0 && parse_plan(pl) == 0;
}

int main(int argc, char **argv) {
  (void)argc;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 64);
  if (n < 0) { perror("berth: readlink /proc/self/exe"); return 125; }
  self[n] = 0;
  /* self = PKG/native/build/berth */
  for (int up = 0; up < 3; up++) { char *s = strrchr(self, '/'); if (s) *s = 0; }
  snprintf(pkg, sizeof pkg, "%s", self);
  if (!argv[1] || strcmp(argv[1], "run") || getuid() != 0 || getenv("BERTH_NO_RUN_PLAN")) exec_node(argv, NULL, NULL);
  for (char **a = argv + 2; *a; a++) if (!strcmp(*a, "--root") || !strncmp(*a, "--root=", 7)) exec_node(argv, NULL, NULL);
  /* The first --name's value is left out of the key: one plan serves every name. (Where that
   * --name is not the option, e.g. in the command, the CLI writes no plan for the key.) */
  const char *given_name = NULL;
  int name_at = 0;
  for (int i = 2; argv[i]; i++) {
    if (!strcmp(argv[i], "--name") && argv[i + 1]) { given_name = argv[i + 1]; name_at = i + 1; break; }
    if (!strncmp(argv[i], "--name=", 7)) { given_name = argv[i] + 7; name_at = i; break; }
  }
  int name_ok = 0;
  if (given_name) {
    /* As ContainerStore.reserve: a leading "/" goes; anything else the CLI says is wrong. */
    if (*given_name == '/') given_name++;
    name_ok = (given_name[0] && strlen(given_name) < 200 && strcmp(given_name, "names") && given_name[0] != '.' && given_name[0] != '_' && given_name[0] != '-');
    for (const char *c = given_name; name_ok && *c; c++) name_ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-';
  }
  /* The plan is a previous run of exactly this: build, user, umask, cwd, terminals, args,
   * environment; looked up with the whole command line, then with its last 1, 2, … arguments
   * left out (a plan the CLI wrote for a command's arguments fills them in). */
  char head[4200];
  struct stat bst;
  snprintf(head, sizeof head, "%s/dist/berth.bundle.cjs", pkg);
  if (stat(head, &bst) < 0) exec_node(argv, NULL, NULL);
  mode_t um = umask(0);
  umask(um);
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) exec_node(argv, NULL, NULL);
  snprintf(head, sizeof head, "berth-run-key " PLAN_VERSION " %llu %llu %llu %lld.%09ld uid %d umask %o tty %d%d%d cwd %s",
           (unsigned long long)bst.st_dev, (unsigned long long)bst.st_ino, (unsigned long long)bst.st_size,
           (long long)bst.st_mtim.tv_sec, bst.st_mtim.tv_nsec, (int)getuid(), (unsigned)um, isatty(0), isatty(1), isatty(2), cwd);
  struct buf env = {0};
  for (char **e = environ; *e; e++) {
    /* (Only where Node is, and what to trace: neither changes what a run does.) */
    if (!strncmp(*e, "BERTH_RUN_", 10) || !strncmp(*e, "BERTH_NODE=", 11)) continue;
    puts0(&env, *e);
  }
  int nargs = 0;
  while (argv[nargs + 1]) nargs++;
  const char *root = getenv("BERTH_ROOT") && *getenv("BERTH_ROOT") ? getenv("BERTH_ROOT") : "/var/lib/berth";
  char full_path[4200] = "", *full_hex = NULL;
  /* Tried first: the whole command line (a plan for the image's own command); then the command
   * line with its last 0, 1, 2, … arguments left out (after "run", the image and the command's
   * name at least stay). */
  for (int tail = -1; tail <= nargs - 3; tail++) {
    int keep = tail < 0 ? nargs : nargs - tail;
    /* A --name among the arguments left out is the command's: this run names no container. */
    int named = name_at && name_at <= keep;
    if (named && !name_ok) continue; /* (the CLI says what is wrong with it) */
    struct buf key = {0};
    puts0(&key, head);
    for (int i = 1; i <= keep; i++) puts0(&key, i != name_at || !named ? argv[i] : strncmp(argv[i], "--name=", 7) ? "\x01" : "--name=\x01");
    if (tail >= 0) puts0(&key, "\x01TAIL");
    puts0(&key, "");
    put(&key, env.p ? env.p : "", env.n);
    char plan_path[4200];
    snprintf(plan_path, sizeof plan_path, "%s/plans/%016llx.plan", root, (unsigned long long)fnv1a(key.p, key.n));
    if (tail < 0) {
      snprintf(full_path, sizeof full_path, "%s", plan_path);
      full_hex = malloc(key.n * 2 + 1);
      if (!full_hex) exec_node(argv, NULL, NULL);
      hex((unsigned char *)key.p, key.n, full_hex);
    }
    struct plan pl = {0};
    if (!load_plan(plan_path, &pl)) { free(key.p); continue; }
    struct rec *ver = find(&pl, "version"), *k = find(&pl, "key");
    int shape_ok = (tail >= 0) == (find(&pl, "tail") != NULL);
    if (!ver || strcmp(ver->val, PLAN_VERSION) || !k || k->len != key.n || memcmp(k->val, key.p, key.n) || !shape_ok) { free(key.p); continue; }
    free(key.p);
    return replay(&pl, argv, full_hex, full_path, named ? given_name : NULL, tail > 0 ? argv + 1 + nargs - tail : NULL, tail > 0 ? tail : 0, tail >= 0);
  }
  exec_node(argv, full_path, full_hex);
}
