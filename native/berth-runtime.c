/*
 * berth-runtime front end. `start`, `state`, `kill` and `delete` only act on what `create`
 * recorded (ROOT/ID/state.txt, written by src/runtime/state.ts), so they run here without
 * starting Node; every other verb is handed to the bundled TypeScript CLI (exec node).
 *
 * state.txt lines: "pid N", "starttime N", "cgroup DIR" (repeated), "pre JSON", "post JSON",
 * "hook poststart|poststop TIMEOUT PATH" followed by its "arg X" and "env X" lines.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifndef BERTH_NODE
#define BERTH_NODE "node"
#endif

static const char *root_dir = "/run/berth-runtime";
static const char *log_path;
static int log_json;

static void log_line(const char *level, const char *msg) {
  if (!log_path) return;
  FILE *f = fopen(log_path, "ae");
  if (!f) return;
  time_t now = time(NULL);
  char ts[64];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  if (log_json) {
    fprintf(f, "{\"level\":\"%s\",\"msg\":\"", level);
    for (const char *p = msg; *p; p++) {
      if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
      else if ((unsigned char)*p < 0x20) fprintf(f, "\\u%04x", *p);
      else fputc(*p, f);
    }
    fprintf(f, "\",\"time\":\"%s\"}\n", ts);
  } else {
    fprintf(f, "time=\"%s\" level=%s msg=\"%s\"\n", ts, level, msg);
  }
  fclose(f);
}

/* Says msg on stderr ("berth-runtime: [warning: ]…") and in the --log file. */
static void report(const char *level, const char *fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  fprintf(stderr, "berth-runtime: %s%s\n", strcmp(level, "warning") ? "" : "warning: ", msg);
  log_line(level, msg);
}

static void warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("warning", fmt, ap);
  va_end(ap);
}

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("error", fmt, ap);
  va_end(ap);
  exit(1);
}

/* ---- recorded state -------------------------------------------------------------------- */

#define MAX_LINES 4096
struct container {
  char id[1100], dir[4096];
  long pid;
  unsigned long long starttime;
  char *lines[MAX_LINES];
  int nlines;
};

static void valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > 1024 || !strcmp(id, ".") || !strcmp(id, ".."))
    fail("invalid container id \"%s\"", id);
  for (const char *p = id; *p; p++)
    if (!(((*p | 32) >= 'a' && (*p | 32) <= 'z') || (*p >= '0' && *p <= '9') || strchr("_+.-", *p)))
      fail("invalid container id \"%s\": use letters, digits, \"_\", \"+\", \"-\" and \".\"", id);
}

static void load(struct container *c, const char *id) {
  valid_id(id);
  snprintf(c->id, sizeof c->id, "%s", id);
  snprintf(c->dir, sizeof c->dir, "%s/%s", root_dir, id);
  char path[8400];
  snprintf(path, sizeof path, "%s/state.txt", c->dir);
  FILE *f = fopen(path, "re");
  if (!f) {
    struct stat st;
    if (stat(c->dir, &st) == 0) fail("container %s is still being created", id);
    fail("container %s does not exist (in %s)", id, root_dir);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0 && c->nlines < MAX_LINES) {
    if (line[n - 1] == '\n') line[n - 1] = 0;
    c->lines[c->nlines++] = strdup(line);
    if (!strncmp(line, "pid ", 4)) c->pid = atol(line + 4);
    else if (!strncmp(line, "starttime ", 10)) c->starttime = strtoull(line + 10, NULL, 10);
  }
  free(line);
  fclose(f);
}

/* Alive means: the pid exists, is the process create started (same start time), and is not
 * a zombie (PID 1 may take seconds to reap it). */
static int alive(const struct container *c) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", c->pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p || p[1] == 0) return 0;
  char state = p[2];
  if (state == 'Z' || state == 'X') return 0;
  p += 2;
  for (int field = 3; field < 22 && p; field++) p = strchr(p + 1, ' ');
  return p && strtoull(p + 1, NULL, 10) == c->starttime;
}

static const char *status_of(const struct container *c) {
  if (!alive(c)) return "stopped";
  char fifo[8400];
  snprintf(fifo, sizeof fifo, "%s/exec.fifo", c->dir);
  return access(fifo, F_OK) == 0 ? "created" : "running";
}

static const char *field(const struct container *c, const char *key) {
  size_t k = strlen(key);
  for (int i = 0; i < c->nlines; i++)
    if (!strncmp(c->lines[i], key, k) && c->lines[i][k] == ' ') return c->lines[i] + k + 1;
  return "";
}

static char *state_json(const struct container *c) {
  const char *status = status_of(c);
  char *out = NULL;
  if (strcmp(status, "stopped") == 0)
    (void)!asprintf(&out, "%s,\"status\":\"%s\"%s", field(c, "pre"), status, field(c, "post"));
  else
    (void)!asprintf(&out, "%s,\"status\":\"%s\",\"pid\":%ld%s", field(c, "pre"), status, c->pid, field(c, "post"));
  return out;
}

/* ---- hooks (runtime.md: poststart and poststop failures are logged, not fatal) ------------ */

static void run_hooks(const struct container *c, const char *kind) {
  char *json = state_json(c);
  for (int i = 0; i < c->nlines; i++) {
    char *l = c->lines[i];
    if (strncmp(l, "hook ", 5) != 0) continue;
    char hk[16];
    int timeout = 0, off = 0;
    if (sscanf(l + 5, "%15s %d %n", hk, &timeout, &off) < 2 || strcmp(hk, kind) != 0) continue;
    const char *path = l + 5 + off;
    char *argv[256], *envp[256];
    int a = 0, e = 0;
    for (int j = i + 1; j < c->nlines; j++) {
      if (!strncmp(c->lines[j], "arg ", 4) && a < 255) argv[a++] = c->lines[j] + 4;
      else if (!strncmp(c->lines[j], "env ", 4) && e < 255) envp[e++] = c->lines[j] + 4;
      else break;
    }
    argv[a] = NULL;
    envp[e] = NULL;
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0) { warn("%s hook %s: pipe: %s", kind, path, strerror(errno)); continue; }
    pid_t pid = fork();
    if (pid == 0) {
      dup2(in[0], 0);
      execve(path, argv, envp);
      fprintf(stderr, "berth-runtime: exec %s hook %s: %s\n", kind, path, strerror(errno));
      _exit(127);
    }
    close(in[0]);
    signal(SIGPIPE, SIG_IGN);
    if (write(in[1], json, strlen(json)) < 0) { /* the hook need not read its stdin */ }
    close(in[1]);
    int status = 0;
    for (long waited = 0;; waited += 2) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR)) break;
      if (timeout > 0 && waited >= timeout * 1000L) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        warn("%s hook %s timed out after %d s", kind, path, timeout);
        status = 0;
        break;
      }
      usleep(2000);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      warn("%s hook %s failed (wait status %d)", kind, path, status);
  }
  free(json);
}

/* ---- verbs ----------------------------------------------------------------------------- */

static void json_string(const char *v) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

/* A container whose create has not finished: runtime.md status "creating". */
static int creating(const char *id) {
  char path[8400], bundle[4096] = "";
  snprintf(path, sizeof path, "%s/%s/bundle", root_dir, id);
  FILE *f = fopen(path, "re");
  if (f) { if (!fgets(bundle, sizeof bundle, f)) bundle[0] = 0; fclose(f); }
  printf("{\"ociVersion\":\"" BERTH_OCI_VERSION "\",\"id\":");
  json_string(id);
  printf(",\"status\":\"creating\",\"bundle\":");
  json_string(bundle);
  printf("}\n");
  return 0;
}

static int being_created(const char *id) {
  char path[8400];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s/state.txt", root_dir, id);
  if (stat(path, &st) == 0) return 0;
  snprintf(path, sizeof path, "%s/%s", root_dir, id);
  return stat(path, &st) == 0;
}

static int cmd_state(const char *id) {
  struct container c = {0};
  valid_id(id);
  if (being_created(id)) return creating(id);
  load(&c, id);
  char *json = state_json(&c);
  printf("%s\n", json);
  free(json);
  return 0;
}

static int cmd_start(const char *id) {
  struct container c = {0};
  load(&c, id);
  const char *status = status_of(&c);
  if (strcmp(status, "created") != 0)
    fail("cannot start container %s: it is %s, not created (runtime.md: start needs a created container)", id, status);
  char fifo[8400];
  snprintf(fifo, sizeof fifo, "%s/exec.fifo", c.dir);
  int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail("cannot start container %s: its init is not waiting on %s: %s", id, fifo, strerror(errno));
  if (write(fd, "0", 1) != 1) fail("cannot start container %s: write %s: %s", id, fifo, strerror(errno));
  close(fd);
  unlink(fifo);
  run_hooks(&c, "poststart");
  return 0;
}

static int parse_signal(const char *s) {
  static const struct { const char *name; int sig; } names[] = {
    {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL}, {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT}, {"IOT", SIGIOT}, {"BUS", SIGBUS}, {"FPE", SIGFPE}, {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
    {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"PWR", SIGPWR}, {"SYS", SIGSYS},
  };
  char *end;
  long n = strtol(s, &end, 10);
  if (*s && !*end) {
    if (n <= 0 || n > SIGRTMAX) fail("invalid signal %s", s);
    return (int)n;
  }
  const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(name, names[i].name) == 0) return names[i].sig;
  if (strncasecmp(name, "RTMIN+", 6) == 0) return SIGRTMIN + atoi(name + 6);
  fail("unknown signal \"%s\": give a name such as TERM or KILL, or a number", s);
  return 0;
}

/* Signals every process in the container's cgroup (kill --all, delete --force). */
static int kill_cgroup(const struct container *c, int sig) {
  int sent = 0;
  for (int i = 0; i < c->nlines; i++) {
    if (strncmp(c->lines[i], "cgroup ", 7) != 0) continue;
    char path[8400];
    snprintf(path, sizeof path, "%s/cgroup.procs", c->lines[i] + 7);
    FILE *f = fopen(path, "re");
    if (!f) continue;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1)
      if (kill((pid_t)pid, sig) == 0) sent++;
    fclose(f);
    if (sent) break; /* every hierarchy holds the same processes */
  }
  return sent;
}

static int cmd_kill(const char *id, const char *sigarg, int all) {
  struct container c = {0};
  load(&c, id);
  int sig = parse_signal(sigarg ? sigarg : "TERM");
  const char *status = status_of(&c);
  if (strcmp(status, "stopped") == 0 && !all)
    fail("cannot kill container %s: it is stopped (runtime.md: kill needs a created or running container)", id);
  if (all) {
    kill_cgroup(&c, sig);
    if (alive(&c)) kill((pid_t)c.pid, sig);
    return 0;
  }
  if (kill((pid_t)c.pid, sig) < 0) fail("kill container %s (pid %ld): %s", id, c.pid, strerror(errno));
  return 0;
}

static void remove_cgroups(const struct container *c) {
  for (int i = 0; i < c->nlines; i++) {
    if (strncmp(c->lines[i], "cgroup ", 7) != 0) continue;
    const char *dir = c->lines[i] + 7;
    for (int tries = 0; rmdir(dir) < 0 && errno != ENOENT; tries++) {
      if (errno != EBUSY || tries > 500) { warn("remove cgroup %s: %s", dir, strerror(errno)); break; }
      usleep(2000); /* the last task is still leaving the cgroup */
    }
  }
}

static int cmd_delete(const char *id, int force) {
  struct container c = {0};
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", root_dir, id);
  valid_id(id);
  if (force && access(dir, F_OK) != 0) return 0; /* runc: delete --force of a missing container succeeds */
  if (force && being_created(id)) {
    /* What a create that died half-way left: its own cleanup did not run. */
    char path[8400];
    const char *files[] = { "bundle", "exec.fifo", "state.json", "oci-state.json" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
      snprintf(path, sizeof path, "%s/%s", dir, files[i]);
      unlink(path);
    }
    if (rmdir(dir) < 0) fail("remove %s: %s", dir, strerror(errno));
    return 0;
  }
  load(&c, id);
  const char *status = status_of(&c);
  if (strcmp(status, "stopped") != 0) {
    if (!force) fail("cannot delete container %s: it is %s, not stopped (runtime.md); stop it with kill, or use delete --force", id, status);
    kill_cgroup(&c, SIGKILL);
    kill((pid_t)c.pid, SIGKILL);
    for (int i = 0; alive(&c); i++) {
      if (i > 5000) fail("container %s did not die after SIGKILL", id);
      usleep(1000);
    }
  }
  remove_cgroups(&c);
  const char *files[] = { "state.txt", "state.json", "oci-state.json", "exec.fifo", "bundle" };
  /* Remove state.txt first: a concurrent verb then sees the container as gone. */
  char path[8400];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", c.dir, files[i]);
    unlink(path);
  }
  DIR *d = opendir(c.dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
      snprintf(path, sizeof path, "%s/%s", c.dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  if (rmdir(c.dir) < 0 && errno != ENOENT) warn("remove %s: %s", c.dir, strerror(errno));
  run_hooks(&c, "poststop");
  return 0;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

/* `create` hands over to Node as a child rather than by exec, and returns as soon as Node
 * reports its exit status on the BERTH_DONE_FD pipe (src/cli/berth-runtime.ts), after the
 * state and pid file are written: Node's own teardown (5-10 ms of freeing its heap and
 * threads) then no longer delays the engine. Node dies with this process (PDEATHSIG), as it
 * would if this process had exec'd it; the usual signals are passed on. */
static int report_early;
static pid_t node_child;
static int cg_n;
static pid_t prestarted_init;
static void remove_guessed_cgroups(pid_t init);
static void pass_signal(int sig) { if (node_child > 0) kill(node_child, sig); }
static void prestart_init(const char *bundle, const char *id, int becoming_node);
static void keep_init_channel(void);
static const char *create_bundle, *create_id;

static void run_node_until_done(void) {
  int done[2];
  if (pipe2(done, O_CLOEXEC) < 0) return;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) { close(done[0]); close(done[1]); return; }
  if (pid == 0) {
    close(done[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    fcntl(done[1], F_SETFD, 0);
    char num[32];
    snprintf(num, sizeof num, "%d", done[1]);
    setenv("BERTH_DONE_FD", num, 1);
    return; /* the caller execs node */
  }
  close(done[1]);
  node_child = pid;
  if (create_bundle) prestart_init(create_bundle, create_id, 0);
  struct sigaction sa = { .sa_handler = pass_signal };
  sigemptyset(&sa.sa_mask);
  int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
  unsigned char code;
  ssize_t n;
  do n = read(done[0], &code, 1); while (n < 0 && errno == EINTR);
  if (n == 1 && code == 0) _exit(0);
  int st = 0;
  if (n != 1) while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  if (cg_n) remove_guessed_cgroups(prestarted_init);
  if (n == 1) _exit(code);
  if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
  _exit(128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0));
}

static void exec_node(char **argv) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 64);
  if (n < 0) fail("readlink /proc/self/exe: %s", strerror(errno));
  self[n] = 0;
  /* self = PKG/native/build/berth-runtime */
  for (int up = 0; up < 3; up++) { char *s = strrchr(self, '/'); if (s) *s = 0; }
  char cli[4200];
  snprintf(cli, sizeof cli, "%s/dist/berth-runtime.cjs", self);
  if (access(cli, R_OK) != 0) snprintf(cli, sizeof cli, "%s/dist/src/cli/berth-runtime.js", self);
  int argc = 0;
  while (argv[argc]) argc++;
  char **args = calloc((size_t)argc + 3, sizeof *args);
  const char *node = getenv("BERTH_NODE") ? getenv("BERTH_NODE") : BERTH_NODE;
  args[0] = (char *)node;
  args[1] = cli;
  for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
  /* The runtime makes no TLS connections; extra CA certificates only slow Node's start. */
  unsetenv("NODE_EXTRA_CA_CERTS");
  if (report_early) run_node_until_done();
  /* This process becomes Node (also when Node could not be started as a child). */
  keep_init_channel();
  execvp(node, args);
  if (strcmp(node, "node") != 0) { args[0] = "node"; execvp("node", args); }
  fail("cannot run node (%s): %s; set BERTH_NODE to the node binary", node, strerror(errno));
}

/* ---- create: the cgroups, guessed ahead ------------------------------------------------
 * The first write to a cgroup v1 `cgroup.procs` waits 6-10 ms for an RCU grace period. So
 * that this wait overlaps Node's start-up instead of following it, the front end works out
 * the cgroups the planner will choose (src/runtime/cgroups/manager.ts: linux.cgroupsPath, absolute
 * under each hierarchy's mount point or relative to our own cgroup, default /berth/<id>) and
 * sends them to berth-init at once. This is a guess, not a decision: Node compares it with
 * its own records (BERTH_INIT_CGROUPS) and replaces the berth-init if they differ; anything
 * unusual (no parse, an odd path) means no guess. If Node fails, the directories the guess
 * made are removed here. */

#define MAX_CG 32
static char cg_mount[MAX_CG][512], cg_dir[MAX_CG][1024];
static int cg_made[MAX_CG];

static const char *json_ws(const char *p) { while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++; return p; }

/* Skips a JSON string at p (on its opening quote); returns the position after it or NULL. */
static const char *json_skip_string(const char *p) {
  for (p++; *p && *p != '"'; p++) if (*p == '\\' && !*++p) return NULL;
  return *p == '"' ? p + 1 : NULL;
}

static const char *json_skip_value(const char *p, int depth) {
  p = json_ws(p);
  if (depth > 64) return NULL;
  if (*p == '"') return json_skip_string(p);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = json_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        if (*p != '"' || !(p = json_skip_string(p))) return NULL;
        p = json_ws(p);
        if (*p++ != ':') return NULL;
      }
      if (!(p = json_skip_value(p, depth + 1))) return NULL;
      p = json_ws(p);
      if (*p == ',') { p = json_ws(p + 1); continue; }
      return *p == close ? p + 1 : NULL;
    }
  }
  const char *start = p;
  while (*p && strchr("+-.0123456789eEtruefalsn", *p)) p++;
  return p > start ? p : NULL;
}

/* The value of member `key` of the object at p (the last one, as JSON.parse keeps): 1 and
 * *val set, 0 if absent, -1 if p is not an object or does not parse. */
static int json_member(const char *p, const char *key, const char **val) {
  p = json_ws(p);
  if (*p++ != '{') return -1;
  int found = 0;
  p = json_ws(p);
  if (*p == '}') return 0;
  for (;;) {
    if (*p != '"') return -1;
    const char *k = p + 1, *end = json_skip_string(p);
    if (!end) return -1;
    int match = (size_t)(end - 1 - k) == strlen(key) && !strncmp(k, key, strlen(key));
    p = json_ws(end);
    if (*p++ != ':') return -1;
    p = json_ws(p);
    if (match) { *val = p; found = 1; }
    if (!(p = json_skip_value(p, 1))) return -1;
    p = json_ws(p);
    if (*p == ',') { p = json_ws(p + 1); continue; }
    return *p == '}' ? found : -1;
  }
}

/* linux.cgroupsPath of config.json, or the default; 0 when there is no safe guess. */
static int guess_cgroups_path(const char *bundle, const char *id, char *out, size_t size) {
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", bundle);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  static char text[1 << 20];
  ssize_t n, len = 0;
  while (len < (ssize_t)sizeof text - 1 && (n = read(fd, text + len, sizeof text - 1 - len)) > 0) len += n;
  close(fd);
  if (len <= 0 || len >= (ssize_t)sizeof text - 1) return 0;
  text[len] = 0;
  const char *linux_obj, *cp;
  int r = json_member(text, "linux", &linux_obj);
  if (r < 0) return 0;
  if (r == 1 && *linux_obj == '{') r = json_member(linux_obj, "cgroupsPath", &cp);
  else r = 0;
  if (r < 0) return 0;
  if (r == 0 || *cp != '"') {
    if (r == 1) return 0; /* not a string: validation will say so */
    for (const char *q = id; *q; q++) if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-", *q)) return 0;
    return snprintf(out, size, "/berth/%s", id) < (int)size;
  }
  const char *end = json_skip_string(cp);
  size_t l = (size_t)(end - cp - 2);
  if (l == 0 || l >= size || memchr(cp + 1, '\\', l) || memchr(cp + 1, ':', l)) return 0;
  memcpy(out, cp + 1, l);
  out[l] = 0;
  if (!strcmp(out, "/")) return 0;
  for (const char *c = out; *c; ) { /* no "." or ".." components */
    const char *e = strchr(c, '/');
    size_t cl = e ? (size_t)(e - c) : strlen(c);
    if ((cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.')) return 0;
    c += cl + (e ? 1 : 0);
    if (!e) break;
  }
  return 1;
}

/* path.join of the parts: "/"-separated, repeated "/" collapsed. */
static void join_path(char *out, size_t size, const char *a, const char *b, const char *c) {
  char tmp[2048];
  snprintf(tmp, sizeof tmp, "%s/%s/%s", a, b ? b : "", c);
  size_t o = 0;
  for (const char *p = tmp; *p && o + 1 < size; p++) if (!(*p == '/' && o > 0 && out[o - 1] == '/')) out[o++] = *p;
  out[o] = 0;
}

static void unescape_octal(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
      *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
      p += 3;
    } else *o++ = *p;
  }
  *o = 0;
}

/* Our own cgroup in the hierarchy with `controller` ("" for cgroup2), from /proc/self/cgroup. */
static int own_cgroup(const char *controller, char *out, size_t size) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f) return 0;
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = 0;
    if (!*controller) found = !strcmp(line, "0:");
    else for (char *t = strtok(c1 + 1, ","); t && !found; t = strtok(NULL, ",")) found = !strcmp(t, controller);
    if (found) snprintf(out, size, "%s", c2 + 1);
  }
  fclose(f);
  return found;
}

static const char *const V1[] = { "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
  "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc" };

/* The "cgroup" records the planner would send first (runtime/cgroups/host.ts, manager.ts), in its
 * order: each v1 controller as mountinfo lists it, then the cgroup2 hierarchy. */
static int guess_cgroups(const char *bundle, const char *id) {
  char cgpath[1024];
  if (!guess_cgroups_path(bundle, id, cgpath, sizeof cgpath)) return 0;
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return 0;
  char line[8192], v1_seen[sizeof V1 / sizeof V1[0]] = {0}, v2_mount[512] = "";
  char controller_of[MAX_CG][16];
  cg_n = 0;
  while (fgets(line, sizeof line, f)) {
    char *field[6] = {0}, *save = NULL, *tok = strtok_r(line, " \n", &save);
    for (int i = 0; tok && i < 6; i++, tok = i < 6 ? strtok_r(NULL, " \n", &save) : tok) field[i] = tok;
    if (!field[4]) continue;
    char *fstype = NULL, *super = NULL;
    while ((tok = strtok_r(NULL, " \n", &save))) {
      if (!strcmp(tok, "-")) { fstype = strtok_r(NULL, " \n", &save); strtok_r(NULL, " \n", &save); super = strtok_r(NULL, " \n", &save); break; }
    }
    if (!fstype || !super) continue;
    unescape_octal(field[4]);
    if (!strcmp(fstype, "cgroup2")) { if (!v2_mount[0]) snprintf(v2_mount, sizeof v2_mount, "%s", field[4]); continue; }
    if (strcmp(fstype, "cgroup")) continue;
    for (char *o = strtok_r(super, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
      for (size_t k = 0; k < sizeof V1 / sizeof V1[0]; k++) {
        if (strcmp(o, V1[k]) || v1_seen[k] || cg_n >= MAX_CG - 1) continue;
        v1_seen[k] = 1;
        snprintf(controller_of[cg_n], sizeof controller_of[0], "%s", V1[k]);
        snprintf(cg_mount[cg_n++], sizeof cg_mount[0], "%s", field[4]);
      }
    }
  }
  fclose(f);
  if (v2_mount[0]) { controller_of[cg_n][0] = 0; snprintf(cg_mount[cg_n++], sizeof cg_mount[0], "%s", v2_mount); }
  for (int i = 0; i < cg_n; i++) {
    char own[1024];
    if (cgpath[0] == '/') join_path(cg_dir[i], sizeof cg_dir[i], cg_mount[i], NULL, cgpath);
    else if (own_cgroup(controller_of[i], own, sizeof own)) join_path(cg_dir[i], sizeof cg_dir[i], cg_mount[i], own, cgpath);
    else join_path(cg_dir[i], sizeof cg_dir[i], cg_mount[i], "/", cgpath);
    struct stat st;
    cg_made[i] = stat(cg_dir[i], &st) != 0;
  }
  return cg_n;
}

/* What was guessed, for Node: the records in hex and which directories the guess made. */
static char guess_hex[MAX_CG * 1600 * 2 + 1], guess_made[MAX_CG + 1];

/* Sends the guessed records on the sync socket and keeps what they were for Node. */
static void send_cgroup_guess(int sock) {
  static char buf[MAX_CG * 1600];
  char *hex = guess_hex;
  size_t len = 0;
  for (int i = 0; i < cg_n; i++) {
    size_t body = strlen(cg_mount[i]) + 1 + strlen(cg_dir[i]);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "cgroup %zu\n", body);
    memcpy(buf + len, cg_mount[i], strlen(cg_mount[i]) + 1);
    len += strlen(cg_mount[i]) + 1;
    memcpy(buf + len, cg_dir[i], strlen(cg_dir[i]));
    len += strlen(cg_dir[i]);
    buf[len++] = '\n';
  }
  for (size_t i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", (unsigned char)buf[i]);
  const char *marker = "guess 0\n\n"; /* berth-init: hold back errors until adopted */
  if (write(sock, marker, strlen(marker)) != (ssize_t)strlen(marker)) { cg_n = 0; return; }
  for (size_t off = 0; off < len;) {
    ssize_t w = write(sock, buf + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { cg_n = 0; return; }
    off += (size_t)w;
  }
  for (int i = 0; i < cg_n; i++) guess_made[i] = cg_made[i] ? '1' : '0';
  guess_made[cg_n] = 0;
}

/* After a failed create: the directories the guess made (Node removes the ones it adopted). */
static void remove_guessed_cgroups(pid_t init) {
  if (init > 0) while (waitpid(init, NULL, 0) < 0 && errno == EINTR) {}
  for (int i = 0; i < cg_n; i++) if (cg_made[i]) rmdir(cg_dir[i]);
}

/* `create`: starts berth-init now, with its sync socket on its fd 3, so that it is up (and
 * can make and join the cgroups as soon as the planner names them) while Node starts. Node
 * holds the socket's other end (BERTH_INIT_FD) and reads berth-init's pid and the guess from
 * BERTH_INIT_INFO_FD (src/runtime/init-process.ts); this runs after Node was started, so that
 * Node's start-up, the longest step of create, begins first (~2 ms sooner). berth-init exits
 * quietly if Node closes the socket before sending anything. */
static int init_sock[2] = { -1, -1 }; /* [0] Node's end, [1] berth-init's */
static int init_info[2] = { -1, -1 };

/* Opens the socket and the info pipe, and names them for Node. */
static void prepare_init_channel(void) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, init_sock) < 0) return;
  if (pipe2(init_info, O_CLOEXEC) < 0) {
    close(init_sock[0]); close(init_sock[1]);
    init_sock[0] = init_sock[1] = -1;
    return;
  }
  char num[32];
  snprintf(num, sizeof num, "%d", init_sock[0]);
  setenv("BERTH_INIT_FD", num, 1);
  snprintf(num, sizeof num, "%d", init_info[0]);
  setenv("BERTH_INIT_INFO_FD", num, 1);
}

/* In Node's process, before exec: it keeps its two ends. */
static void keep_init_channel(void) {
  if (init_sock[0] < 0) return;
  fcntl(init_sock[0], F_SETFD, 0);
  fcntl(init_info[0], F_SETFD, 0);
}

/* Starts berth-init and sends it the guess; then tells Node "PID\nGUESS-HEX\nMADE" on the
 * info pipe (a pid of 0: none started) and lets go of Node's ends, unless this process is
 * about to become Node (`becoming_node`). */
static void prestart_init(const char *bundle, const char *id, int becoming_node) {
  if (init_sock[0] < 0) return;
  pid_t pid = 0;
  char path[4200];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 16);
  char *slash = n > 0 ? (path[n] = 0, strrchr(path, '/')) : NULL;
  if (slash) strcpy(slash + 1, "berth-init");
  if (slash && access(path, X_OK) == 0 && (pid = fork()) == 0) {
    if (init_sock[1] == 3) fcntl(3, F_SETFD, 0);
    else if (dup2(init_sock[1], 3) < 0) _exit(127);
    char *args[] = { path, NULL };
    execv(path, args);
    fprintf(stderr, "berth-runtime: exec %s: %s\n", path, strerror(errno));
    _exit(127);
  }
  if (pid < 0) pid = 0;
  close(init_sock[1]);
  if (pid > 0) {
    prestarted_init = pid;
    if (id && guess_cgroups(bundle, id)) send_cgroup_guess(init_sock[0]);
  }
  char head[64];
  int len = snprintf(head, sizeof head, "%d\n", (int)pid);
  struct iovec iov[4] = { { head, (size_t)len }, { guess_hex, strlen(guess_hex) }, { "\n", 1 }, { guess_made, strlen(guess_made) } };
  /* Node reads to the end; a guess larger than the pipe's buffer only waits for it to read. */
  for (int i = 0; i < 4; i++) {
    for (size_t off = 0; off < iov[i].iov_len;) {
      ssize_t w = write(init_info[1], (char *)iov[i].iov_base + off, iov[i].iov_len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      off += (size_t)w;
    }
  }
  close(init_info[1]);
  if (becoming_node) {
    keep_init_channel();
  } else {
    close(init_info[0]);
    close(init_sock[0]);
  }
}

static int takes_value(const char *flag) {
  const char *with[] = { "--root", "--log", "--log-format", "--criu", "--rootless", "-root", "-log", "-log-format" };
  for (size_t i = 0; i < sizeof with / sizeof with[0]; i++) if (!strcmp(flag, with[i])) return 1;
  return 0;
}

int main(int argc, char **argv) {
  int i = 1;
  /* Global flags (runc's): only --root and --log matter to the native verbs. */
  for (; i < argc && argv[i][0] == '-'; i++) {
    char *a = argv[i], *eq = strchr(a, '=');
    const char *name = a[1] == '-' ? a + 2 : a + 1;
    const char *val = eq ? eq + 1 : (takes_value(a) && i + 1 < argc ? argv[i + 1] : NULL);
    if (!eq && takes_value(a)) i++;
    if (!strncmp(name, "root", 4) && (name[4] == 0 || name[4] == '=')) root_dir = val;
    else if (!strncmp(name, "log-format", 10)) log_json = val && !strcmp(val, "json");
    else if (!strncmp(name, "log", 3) && (name[3] == 0 || name[3] == '=')) log_path = val;
    else if (!strncmp(name, "criu", 4) && (name[4] == 0 || name[4] == '='))
      fail("--criu is not supported: berth-runtime has no checkpoint/restore; leave --criu out");
    else if (!strncmp(name, "rootless", 8) && (name[8] == 0 || name[8] == '=') &&
             (!val || (strcmp(val, "true") && strcmp(val, "false") && strcmp(val, "auto"))))
      fail("--rootless \"%s\": give true, false or auto", val ? val : "");
    else if (!strcmp(name, "help") || !strcmp(name, "h") || !strcmp(name, "version") || !strcmp(name, "v")) exec_node(argv);
  }
  if (i >= argc) exec_node(argv);
  const char *verb = argv[i++];
  int native = !strcmp(verb, "start") || !strcmp(verb, "state") || !strcmp(verb, "kill") || !strcmp(verb, "delete");
  if (!strcmp(verb, "create")) {
    /* runc's create flags: only --bundle and the id matter here. */
    const char *bundle = ".", *id = NULL;
    int ok = 1;
    for (int j = i; j < argc && ok; j++) {
      const char *a = argv[j];
      if (!strcmp(a, "--bundle") || !strcmp(a, "-b")) { if (j + 1 < argc) bundle = argv[++j]; else ok = 0; }
      else if (!strncmp(a, "--bundle=", 9)) bundle = a + 9;
      else if (!strcmp(a, "--pid-file") || !strcmp(a, "--console-socket") || !strcmp(a, "--preserve-fds")) j++;
      else if (a[0] == '-') { if (!strchr(a, '=') && strcmp(a, "--no-pivot") && strcmp(a, "--no-new-keyring")) ok = 0; }
      else if (!id) id = a;
      else ok = 0;
    }
    prepare_init_channel();
    /* BERTH_RUNTIME_WAIT_NODE=1: return only when Node has exited (profiling, max RSS); then
     * berth-init starts first, as this process becomes Node. */
    report_early = !getenv("BERTH_RUNTIME_WAIT_NODE");
    if (report_early) {
      create_bundle = bundle;
      create_id = ok ? id : NULL;
    } else {
      prestart_init(bundle, ok ? id : NULL, 1);
    }
  }
  if (!native) exec_node(argv);

  const char *pos[4] = {0};
  int npos = 0, force = 0, all = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--force") || !strcmp(a, "-f")) force = 1;
    else if (!strcmp(a, "--all") || !strcmp(a, "-a")) all = 1;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) exec_node(argv);
    else if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) fail("%s: unknown flag %s", verb, a);
    else if (npos < 4) pos[npos++] = a;
  }
  if (!strcmp(verb, "kill")) {
    if (npos < 1 || npos > 2) fail("usage: berth-runtime kill [--all] <container-id> [signal]");
    return cmd_kill(pos[0], npos == 2 ? pos[1] : NULL, all);
  }
  if (npos != 1) fail("usage: berth-runtime %s%s <container-id>", verb, !strcmp(verb, "delete") ? " [--force]" : "");
  if (!strcmp(verb, "start")) return cmd_start(pos[0]);
  if (!strcmp(verb, "state")) return cmd_state(pos[0]);
  return cmd_delete(pos[0], force);
}
