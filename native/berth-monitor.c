/*
 * berth-monitor: holds one container's stdio, as conmon does for podman and the shim for
 * containerd, so that a detached container needs no Node process and no daemon.
 *
 *   berth-monitor [-a] [-i] [-t SOCKET] [-l LOG] [-s MAXSIZE] [-e EXITFILE]
 *                 [-r REMOVE-DIR -n NAME-LINK -R RUNTIME-DIR -m ROOTFS-MOUNT -g CGROUP-DIR...]
 *                 -- COMMAND ARG...
 *
 * It runs COMMAND (berth-init in keep mode, or `runc run`), which stays the parent of the
 * container process and exits with its status; fd 3 (berth-init's plan channel) passes through.
 *  -t SOCKET  listen there for the pty master berth-init sends (runtime-spec console socket)
 *  -A SOCKET  detached: serve `berth attach` there (monitor-attach.h); -i keeps a stdin pipe
 *             open for it (docker's run -di), -o closes it when a client's input ends (stdin
 *             once), -W holds the output until the first client comes (start -a; 10 s at most)
 *  -S         COMMAND is berth-init without keep: it exits once the container process runs,
 *             which is then reparented to us (PR_SET_CHILD_SUBREAPER); its status is the one.
 *  -a         attached: copy the container's output to our stdout/stderr (and stdin, with -i,
 *             to the container); exit with the container's status. Otherwise detached: setsid.
 *  -l LOG     docker's json-file log ({"log","stream","time"} per line), rotated to LOG.1 when
 *             it would pass MAXSIZE bytes (-s, default 10 MiB)
 *  -e FILE    written at exit: "CODE FINISHED-AT-NS\n" (temp, then rename)
 *  -C DIR -O OPTIONS -T TARGET   before COMMAND runs, the container's root: chdir(DIR) (the
 *             lowerdirs in OPTIONS are relative to it), mount("overlay", TARGET, "overlay", 0,
 *             OPTIONS), unless something is mounted at TARGET already. On failure, one "error"
 *             line on fd 3 (the engine's channel; on stderr without one), and exit 125.
 *  -r DIR     `--rm`: after the exit, the container is removed: its cgroup directories (-g)
 *             and the runtime's state (-R) go, the rootfs mount (-m) is detached, the name link
 *             (-n) goes when it still points to this container, and DIR is renamed to a
 *             ".removing-" sibling and deleted (the next berth command finishes a removal this
 *             process could not). -V DIR: a volume of the container's (anonymous) goes too.
 *  -P PID     the container lives no longer than PID, our parent (a build's RUN step): when it
 *             dies (kill -9 included), every child of ours is killed, and the exit recorded as
 *             any other. PR_SET_PDEATHSIG tells us; a parent gone before that is seen at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

static const char *log_path, *exit_path, *sock_path, *rm_dir, *name_link, *runtime_dir, *rootfs_mount;
static const char *cgroups[32];
static int ncg;
static const char *volumes[32];
static int nvol;
static long long max_size = 10 << 20;
static int attached, with_stdin, subreaper;
static int log_fd = -1;
static long long log_size;
static pid_t child;
static pid_t parent_pid;
static volatile sig_atomic_t parent_gone;
static struct termios saved_tio;
static int tio_saved;
static const char *attach_path;
static int attach_wait;
static const char *mount_dir, *mount_options, *mount_target;


static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "berth-monitor: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(125);
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return; }
    p += w;
    n -= (size_t)w;
  }
}

#include "monitor-attach.h"
#include "remove-tree.h"

static void open_log(void) {
  log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0) return;
  struct stat st;
  log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

static void rotate_log(void) {
  char old[4200];
  snprintf(old, sizeof old, "%s.1", log_path);
  close(log_fd);
  rename(log_path, old);
  open_log();
}

/* One json-file entry: {"log":"...","stream":"stdout","time":"RFC3339Nano"} */
static void log_entry(const char *stream, const char *data, size_t n) {
  if (log_fd < 0) return;
  static char buf[6 * 16384 + 256];
  size_t o = 0;
  o += (size_t)snprintf(buf + o, sizeof buf - o, "{\"log\":\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)data[i];
    if (c == '"' || c == '\\') { buf[o++] = '\\'; buf[o++] = (char)c; }
    else if (c == '\n') { buf[o++] = '\\'; buf[o++] = 'n'; }
    else if (c == '\r') { buf[o++] = '\\'; buf[o++] = 'r'; }
    else if (c == '\t') { buf[o++] = '\\'; buf[o++] = 't'; }
    else if (c < 0x20) o += (size_t)snprintf(buf + o, sizeof buf - o, "\\u%04x", c);
    else buf[o++] = (char)c;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  o += (size_t)snprintf(buf + o, sizeof buf - o, "\",\"stream\":\"%s\",\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"}\n",
                        stream, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
  if (log_size > 0 && log_size + (long long)o > max_size) rotate_log();
  if (log_fd < 0) return;
  write_all(log_fd, buf, o);
  log_size += (long long)o;
}

/* Per stream: the partial line waiting for its newline (flushed at 16 KiB, as docker does). */
struct stream {
  const char *name;
  int fd;      /* read end, -1 once at EOF */
  int out;     /* where attached output goes */
  char line[16384];
  size_t len;
};

static void feed(struct stream *s, const char *p, size_t n) {
  if (attached) write_all(s->out, p, n);
  if (attach_nclients) attach_send(s->out, p, n);
  if (log_fd < 0) return;
  for (size_t i = 0; i < n; i++) {
    s->line[s->len++] = p[i];
    if (p[i] == '\n' || s->len == sizeof s->line) {
      log_entry(s->name, s->line, s->len);
      s->len = 0;
    }
  }
}

static void flush_stream(struct stream *s) {
  if (s->len) log_entry(s->name, s->line, s->len);
  s->len = 0;
}

static void forward(int sig) {
  if (child > 0) kill(child, sig);
}

static void on_parent_death(int sig) { (void)sig; parent_gone = 1; }

/* -P: our parent died: kill every child (berth-init, or the container's process reparented to
 * us, a subreaper). Again on each call: a process berth-init cloned just then is ours next. */
static void kill_children_if_orphaned(void) {
  if (!parent_gone) return;
  char path[64], list[4096];
  snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, list, sizeof list - 1) : -1;
  if (fd >= 0) close(fd);
  if (n <= 0) { if (child > 0) kill(child, SIGKILL); return; }
  list[n] = 0;
  for (char *p = list, *end; *p; p = end) {
    long pid = strtol(p, &end, 10);
    if (end == p) break;
    if (pid > 0) kill((pid_t)pid, SIGKILL);
  }
}

static int status_code(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

/*
 * Reaps what has exited (blocking when `block`); returns the container's exit code once known,
 * else -1. Without -S that is COMMAND's status; with -S, COMMAND (berth-init) exiting 0 only
 * means the container runs, and its status comes from the first other child reaped.
 */
static int reap(int block) {
  for (;;) {
    int st;
    pid_t w = waitpid(subreaper ? -1 : child, &st, block ? 0 : WNOHANG);
    if (w < 0 && errno == EINTR) { kill_children_if_orphaned(); continue; }
    if (w <= 0) return w < 0 && errno == ECHILD ? 255 : -1;
    if (w == child) {
      child = -1;
      if (!subreaper || status_code(st) != 0) return status_code(st);
      continue;
    }
    return status_code(st);
  }
}

static volatile sig_atomic_t winch;
static void on_winch(int sig) { (void)sig; winch = 1; }

static int receive_pty(int listener) {
  /* Wait for berth-init to connect, or to exit without connecting. */
  for (;;) {
    struct pollfd p = { .fd = listener, .events = POLLIN };
    int r = poll(&p, 1, 100);
    if (r > 0) break;
    if (r < 0 && errno != EINTR) return -1;
    int code = reap(0);
    if (code >= 0) return -2 - code;
  }
  int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) return -1;
  char data[256];
  char ctrl[CMSG_SPACE(sizeof(int))];
  struct iovec iov = { .iov_base = data, .iov_len = sizeof data };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl };
  ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  close(conn);
  if (n < 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static void copy_winsize(int master) {
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

static void restore_tty(void) {
  if (tio_saved) tcsetattr(0, TCSANOW, &saved_tio);
}

/*
 * --rm, in two parts. The first makes the container gone for every berth command: its name
 * is free, the runtime's record gone and its directory renamed to a ".removing-" sibling (which
 * `ps` skips and the next berth command deletes, with its cgroups, should we die). The second,
 * the slow part (rmdir of each cgroup and the detach of the rootfs mount each wait for an RCU
 * grace period, ~25 ms together here), runs after an attached `run --rm` has its status: in a
 * child of ours with no stdio of the caller's.
 */
static char removing[8600];

static void unlist_container(void) {
  char target[4200];
  if (name_link) {
    ssize_t n = readlink(name_link, target, sizeof target - 1);
    if (n > 0) {
      target[n] = 0;
      char copy[4200];
      snprintf(copy, sizeof copy, "%s", rm_dir);
      if (strcmp(target, basename(copy)) == 0) unlink(name_link);
    }
  }
  char dircopy[4200], basecopy[4200];
  snprintf(dircopy, sizeof dircopy, "%s", rm_dir);
  snprintf(basecopy, sizeof basecopy, "%s", rm_dir);
  snprintf(removing, sizeof removing, "%s/.removing-%s", dirname(dircopy), basename(basecopy));
  if (rename(rm_dir, removing) != 0) removing[0] = 0;
  /* The runtime's record too (a few small files): once the caller has the status, no list shows
   * the container. Its cgroups are found by its id, should the slow part not finish. */
  if (runtime_dir) remove_tree(runtime_dir);
}

static void remove_container(void) {
  for (int i = 0; i < ncg; i++) {
    /* The cgroup empties as the kernel reaps the last process: retry briefly. */
    for (int k = 0; k < 50 && rmdir(cgroups[i]) < 0 && errno == EBUSY; k++) usleep(2000);
  }
  if (rootfs_mount) {
    /* The mount moved with its directory (-m names it under the -r directory). */
    char moved[8700];
    size_t n = strlen(rm_dir);
    if (removing[0] && strncmp(rootfs_mount, rm_dir, n) == 0 && rootfs_mount[n] == '/')
      snprintf(moved, sizeof moved, "%s%s", removing, rootfs_mount + n);
    else
      snprintf(moved, sizeof moved, "%s", rootfs_mount);
    umount2(moved, MNT_DETACH);
  }
  if (removing[0]) remove_tree(removing);
  /* As volumes.ts removes one: renamed to .removing-PID-NAME (swept if we die), then deleted. */
  char dircopy[4200], basecopy[4200], vol[8600];
  for (int i = 0; i < nvol; i++) {
    snprintf(dircopy, sizeof dircopy, "%s", volumes[i]);
    snprintf(basecopy, sizeof basecopy, "%s", volumes[i]);
    snprintf(vol, sizeof vol, "%s/.removing-%d-%s", dirname(dircopy), (int)getpid(), basename(basecopy));
    if (rename(volumes[i], vol) == 0) remove_tree(vol);
  }
}

/* The slow part of --rm in a child, so that our exit (the caller's status) does not wait for it. */
static void remove_container_behind(void) {
  pid_t pid = fork();
  if (pid != 0) {
    if (pid < 0) remove_container(); /* no child: do it ourselves */
    return;
  }
  setsid();
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); if (null > 2) close(null); }
  remove_container();
  _exit(0);
}

static void write_exit(int code) {
  if (!exit_path) return;
  char tmp[4200], buf[64];
  snprintf(tmp, sizeof tmp, "%s.tmp", exit_path);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int n = snprintf(buf, sizeof buf, "%d %lld\n", code, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  write_all(fd, buf, (size_t)n);
  if (!rm_dir) fsync(fd); /* (--rm: the directory goes next) */
  close(fd);
  rename(tmp, exit_path);
}

/* Whether something is mounted at path: an overlay (or any other mount) has a device of its own. */
static int mounted_at(const char *path) {
  char parent[4200];
  struct stat a, b;
  snprintf(parent, sizeof parent, "%s/..", path);
  return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* -C/-O/-T: the container's overlay root, unless mounted already (a container started again). */
static void mount_root(int has_channel) {
  if (mounted_at(mount_target)) return;
  int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  const char *failed = NULL;
  if (chdir(mount_dir) != 0) failed = mount_dir;
  /* The option string of mount(2) is one page at most; the engine keeps it shorter. */
  else if (mount("overlay", mount_target, "overlay", 0, mount_options) != 0) failed = mount_target;
  int err = errno;
  if (here >= 0) {
    if (fchdir(here) != 0) { /* left in DIR: nothing after this uses the cwd */ }
    close(here);
  }
  if (!failed) return;
  char line[4400];
  int n = snprintf(line, sizeof line, "error cannot mount the container's root (overlay on %s): %s: %s; its snapshots or its upper dir may be damaged: remove it (berth rm) and run it again\n", mount_target, failed, strerror(err));
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  if (!has_channel) fprintf(stderr, "berth-monitor: %s", line + 6); /* else the engine says it */
  else {
    write_all(3, line, (size_t)n);
    /* The engine may still be sending the plan: read it away until it closes its end (it does
     * on reading the error), so that its write does not fail and lose our line with it. */
    shutdown(3, SHUT_WR);
    char sink[4096];
    struct pollfd p = { .fd = 3, .events = POLLIN };
    while (poll(&p, 1, 5000) > 0 && read(3, sink, sizeof sink) > 0) {}
  }
  exit(125);
}

int main(int argc, char **argv) {
  int opt;
  while ((opt = getopt(argc, argv, "+aiSoWA:t:l:s:e:r:n:R:m:g:V:C:O:T:P:")) != -1) {
    switch (opt) {
    case 'a': attached = 1; break;
    case 'S': subreaper = 1; break;
    case 'i': with_stdin = 1; break;
    case 'o': attach_stdin_once = 1; break;
    case 'W': attach_wait = 1; break;
    case 'A': attach_path = optarg; break;
    case 't': sock_path = optarg; break;
    case 'l': log_path = optarg; break;
    case 's': max_size = atoll(optarg); break;
    case 'e': exit_path = optarg; break;
    case 'r': rm_dir = optarg; break;
    case 'n': name_link = optarg; break;
    case 'R': runtime_dir = optarg; break;
    case 'm': rootfs_mount = optarg; break;
    case 'g': if (ncg < 32) cgroups[ncg++] = optarg; break;
    case 'V': if (nvol < 32) volumes[nvol++] = optarg; break;
    case 'C': mount_dir = optarg; break;
    case 'O': mount_options = optarg; break;
    case 'T': mount_target = optarg; break;
    case 'P': parent_pid = (pid_t)atoi(optarg); break;
    default: fail("usage: berth-monitor [-a] [-i] [-t SOCKET] [-l LOG] [-s MAX] [-e EXITFILE] [-r DIR ...] -- COMMAND ARG...");
    }
  }
  if (optind >= argc) fail("no command given");
  /* fd 3, when given, is berth-init's plan channel: it passes to the command only. */
  int has_channel = fcntl(3, F_GETFD) >= 0;
  if (!attached) setsid();
  if (subreaper) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  if (parent_pid > 0) {
    /* (A real-time signal: none that the engine sends or we forward. Not inherited by fork.) */
    struct sigaction sa = { .sa_handler = on_parent_death };
    sigaction(SIGRTMIN + 1, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGRTMIN + 1, 0, 0, 0);
    if (getppid() != parent_pid) parent_gone = 1;
  }
  if (log_path) open_log();
  if (mount_options) {
    if (!mount_dir || !mount_target) fail("-O needs -C DIR and -T TARGET");
    mount_root(has_channel);
  }

  int listener = -1;
  if (sock_path) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(sock_path) >= sizeof sa.sun_path) fail("console socket path too long: %s", sock_path);
    strcpy(sa.sun_path, sock_path);
    unlink(sock_path);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(listener, 1) < 0)
      fail("console socket %s: %s", sock_path, strerror(errno));
  }

  if (attach_path && !attached) attach_listen(attach_path);
  int out[2] = { -1, -1 }, err[2] = { -1, -1 }, in[2] = { -1, -1 };
  /* docker's run -di: the container's stdin stays open for whoever attaches. */
  if (attach_listener >= 0 && with_stdin && !sock_path && pipe2(in, O_CLOEXEC) < 0) fail("pipe: %s", strerror(errno));
  if (!sock_path && (!attached || log_path)) {
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) fail("pipe: %s", strerror(errno));
  }
  child = fork();
  if (child < 0) fail("fork: %s", strerror(errno));
  if (child == 0) {
    if (in[0] >= 0) dup2(in[0], 0);
    else if (!attached || !with_stdin) {
      int null = open("/dev/null", O_RDONLY);
      if (null >= 0 && !(attached && sock_path)) { dup2(null, 0); }
      if (null > 0) close(null);
    }
    if (out[1] >= 0) { dup2(out[1], 1); dup2(err[1], 2); }
    else if (!attached) {
      int null = open("/dev/null", O_WRONLY);
      if (null >= 0) { dup2(null, 1); dup2(null, 2); if (null > 2) close(null); }
    }
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "berth-monitor: exec %s: %s\n", argv[optind], strerror(errno));
    _exit(127);
  }
  /* fd 3 is berth-init's now: without our copy, the engine sees its end close with it. */
  if (has_channel) close(3);
  if (out[1] >= 0) { close(out[1]); close(err[1]); }
  if (in[0] >= 0) { close(in[0]); input_set(in[1], 0); }

  int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], forward);
  signal(SIGPIPE, SIG_IGN);

  struct stream sout = { .name = "stdout", .fd = out[0], .out = 1 }, serr = { .name = "stderr", .fd = err[0], .out = 2 };
  int master = -1, code = -1;
  if (listener >= 0) {
    master = receive_pty(listener);
    close(listener);
    unlink(sock_path);
    if (master <= -2) code = -2 - master;
    else if (master < 0) { kill(child, SIGKILL); }
    else {
      sout.fd = master;
      if (with_stdin && (attach_listener >= 0 || attached)) input_set(master, 1);
      if (attached && isatty(0)) {
        if (tcgetattr(0, &saved_tio) == 0) {
          tio_saved = 1;
          atexit(restore_tty);
          struct termios raw = saved_tio;
          cfmakeraw(&raw);
          tcsetattr(0, TCSANOW, &raw);
        }
        struct sigaction sa = { .sa_handler = on_winch };
        sigaction(SIGWINCH, &sa, NULL);
        copy_winsize(master);
      }
    }
  }
  int in_open = attached && with_stdin && master >= 0;
  char buf[16384];
  int exited = code >= 0;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    kill_children_if_orphaned();
    if (winch) { winch = 0; if (master >= 0) copy_winsize(master); }
    struct pollfd p[4 + ATTACH_MAX];
    int np = 0;
    /* -W: the output waits (in its pipe or pty) for the first client, 10 s at most. */
    int holding = attach_wait && !attach_accepted && !exited;
    if (holding) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - t0.tv_sec >= 10) holding = attach_wait = 0;
    }
    if (sout.fd >= 0 && !holding) p[np++] = (struct pollfd){ .fd = sout.fd, .events = POLLIN };
    if (serr.fd >= 0 && !holding) p[np++] = (struct pollfd){ .fd = serr.fd, .events = POLLIN };
    int waiting = input_pending();
    if (in_open && !waiting) p[np++] = (struct pollfd){ .fd = 0, .events = POLLIN };
    int nio = np;
    if (attach_listener >= 0 && !exited) p[np++] = (struct pollfd){ .fd = attach_listener, .events = POLLIN };
    for (int i = 0; i < attach_nclients && !waiting; i++) p[np++] = (struct pollfd){ .fd = attach_clients[i], .events = POLLIN };
    int nin = np;
    if (waiting && !exited) p[np++] = (struct pollfd){ .fd = attach_in, .events = POLLOUT };
    if (!exited && (code = reap(0)) >= 0) exited = 1;
    if (!holding && (nio == 0 || (exited && nio == (in_open && !waiting ? 1 : 0)))) {
      if (exited) break;
      /* Output closed before the exit, nothing else to serve: wait for it (EINTR: a forwarded signal). */
      if (np == nio) {
        code = reap(1);
        exited = 1;
        continue;
      }
    }
    /* After the exit, a pty master never reports EOF while other holders live: drain briefly. */
    int r = poll(p, (nfds_t)np, exited ? 50 : 200);
    if (r < 0 && errno != EINTR) break;
    if (r == 0 && exited) break;
    if (nin < np && p[nin].revents) input_flush();
    /* Clients first (from the end: a dropped client's slot takes the last one's), then stdio. */
    for (int i = nin - 1; i >= nio && r > 0; i--) {
      if (!p[i].revents) continue;
      if (p[i].fd == attach_listener) { attach_accept(); continue; }
      for (int k = 0; k < attach_nclients; k++) if (attach_clients[k] == p[i].fd) { attach_read(k, master); break; }
    }
    for (int i = 0; i < nio && r > 0; i++) {
      if (!p[i].revents) continue;
      if (p[i].fd == 0) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n <= 0) { in_open = 0; if (master >= 0 && !isatty(0)) input_push("\4", 1); }
        else input_push(buf, (size_t)n);
        continue;
      }
      struct stream *s = p[i].fd == sout.fd ? &sout : &serr;
      ssize_t n = read(s->fd, buf, sizeof buf);
      if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue; /* EAGAIN: a non-blocking pty master */
        flush_stream(s);
        close(s->fd);
        s->fd = -1;
        continue;
      }
      feed(s, buf, (size_t)n);
    }
  }
  flush_stream(&sout);
  flush_stream(&serr);
  if (code < 0) code = reap(1);
  kill_children_if_orphaned(); /* (one berth-init cloned as it was killed) */
  write_exit(code);
  if (attach_path) attach_finish(code, attach_path);
  restore_tty();
  if (rm_dir) {
    unlist_container();
    if (attached) remove_container_behind();
    else remove_container();
  }
  return code;
}
