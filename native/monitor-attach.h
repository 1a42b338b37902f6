/*
 * berth-monitor's attach socket (as conmon's): `berth attach` and `berth start -a` connect to a
 * unix socket the monitor of a detached container serves, and get the container's output and
 * give it input while it runs. Included by berth-monitor.c (it uses its write_all).
 *
 * Frames both ways: an 8-byte header [TYPE, 0, 0, 0, LENGTH as uint32 big-endian] then LENGTH
 * bytes (the header of docker's attach stream, so stdout and stderr stay apart).
 *   monitor → client: 1 stdout, 2 stderr, 3 exit (the status in decimal); then the monitor closes.
 *   client → monitor: 0 stdin bytes, 1 window size (rows, cols as uint16 big-endian),
 *                     2 end of the client's input (closes the container's stdin when -o).
 * Only root reaches the socket (mode 0600 in a 0700 directory).
 */
#include <sys/time.h>

#define ATTACH_MAX 16
#define ATTACH_PAYLOAD_MAX (1 << 20)

static int attach_listener = -1;
static int attach_clients[ATTACH_MAX];
static int attach_nclients;
static int attach_accepted; /* a client has come (for -W) */
static int attach_in = -1;  /* where client input goes: the stdin pipe or the pty master */
static int attach_in_tty;
static int attach_stdin_once; /* -o: the end of a client's input is the end of the container's */

static void attach_listen(const char *path) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof sa.sun_path) fail("attach socket path too long: %s", path);
  strcpy(sa.sun_path, path);
  unlink(path);
  attach_listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  mode_t old = umask(0077);
  int ok = attach_listener >= 0 && bind(attach_listener, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(attach_listener, ATTACH_MAX) == 0;
  umask(old);
  if (!ok) fail("attach socket %s: %s", path, strerror(errno));
}

static void attach_accept(void) {
  int fd = accept4(attach_listener, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return;
  if (attach_nclients == ATTACH_MAX) { close(fd); return; }
  /* A client that stops reading is dropped after 2 s rather than stalling the container. */
  struct timeval snd = { .tv_sec = 2 }, rcv = { .tv_sec = 1 };
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof rcv);
  attach_clients[attach_nclients++] = fd;
  attach_accepted = 1;
}

static void attach_drop(int i) {
  close(attach_clients[i]);
  attach_clients[i] = attach_clients[--attach_nclients];
}

static int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static void frame_header(unsigned char h[8], int type, size_t n) {
  h[0] = (unsigned char)type; h[1] = h[2] = h[3] = 0;
  h[4] = (unsigned char)(n >> 24); h[5] = (unsigned char)(n >> 16); h[6] = (unsigned char)(n >> 8); h[7] = (unsigned char)n;
}

static void attach_send(int type, const char *p, size_t n) {
  unsigned char h[8];
  frame_header(h, type, n);
  for (int i = attach_nclients - 1; i >= 0; i--) {
    if (send_all(attach_clients[i], h, 8) < 0 || send_all(attach_clients[i], p, n) < 0) attach_drop(i);
  }
}

/* The container's status to every client, then the sockets close. */
static void attach_finish(int code, const char *path) {
  char buf[16];
  int n = snprintf(buf, sizeof buf, "%d", code);
  attach_send(3, buf, (size_t)n);
  /* Closing a unix socket with unread input resets the peer, which may then lose what we sent:
   * our end goes first, then what the client still sends is read until it closes (1 s at most). */
  for (int i = 0; i < attach_nclients; i++) shutdown(attach_clients[i], SHUT_WR);
  for (int i = 0; i < attach_nclients; i++) {
    char sink[4096];
    struct pollfd p = { .fd = attach_clients[i], .events = POLLIN };
    while (poll(&p, 1, 1000) > 0 && read(attach_clients[i], sink, sizeof sink) > 0) {}
  }
  while (attach_nclients) attach_drop(attach_nclients - 1);
  if (attach_listener >= 0) { close(attach_listener); unlink(path); }
}

static int read_full(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

static void attach_close_stdin(void) {
  if (attach_in < 0) return;
  if (attach_in_tty) { char eot = 4; write_all(attach_in, &eot, 1); return; }
  close(attach_in);
  attach_in = -1;
}

/* One frame from client i (poll said it is readable); a client that closed or misbehaves goes. */
static void attach_read(int i, int master) {
  int fd = attach_clients[i];
  unsigned char h[8];
  if (read_full(fd, h, 8) < 0) { attach_drop(i); return; }
  size_t n = ((size_t)h[4] << 24) | ((size_t)h[5] << 16) | ((size_t)h[6] << 8) | h[7];
  if (n > ATTACH_PAYLOAD_MAX) { attach_drop(i); return; }
  static char data[65536];
  size_t left = n;
  while (left > 0) {
    size_t chunk = left < sizeof data ? left : sizeof data;
    if (read_full(fd, data, chunk) < 0) { attach_drop(i); return; }
    if (h[0] == 0 && attach_in >= 0) write_all(attach_in, data, chunk);
    if (h[0] == 1 && master >= 0 && chunk >= 4) {
      struct winsize ws = { .ws_row = (unsigned short)((unsigned char)data[0] << 8 | (unsigned char)data[1]),
                            .ws_col = (unsigned short)((unsigned char)data[2] << 8 | (unsigned char)data[3]) };
      ioctl(master, TIOCSWINSZ, &ws);
    }
    left -= chunk;
  }
  if (h[0] == 2 && attach_stdin_once) attach_close_stdin();
}
