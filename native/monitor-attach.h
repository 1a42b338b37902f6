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

/*
 * Input on its way to the container (clients' stdin frames; our stdin with -a -t) waits here
 * when the container's stdin pipe or pty is full: attach_in is non-blocking, so a container
 * that does not read its input never stops the monitor from copying its output, writing its
 * log and reaping it. While input waits, no more is read (from the clients, or our stdin):
 * their sockets and pipes hold it back.
 */
static char *inq;
static size_t inq_len, inq_off, inq_cap;
static int inq_close; /* close the stdin pipe once what waits is written */

static int input_pending(void) { return attach_in >= 0 && (inq_off < inq_len || inq_close); }

static void input_set(int fd, int tty) {
  attach_in = fd;
  attach_in_tty = tty;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Writes what waits as far as the container takes it; drops it when the container's end is gone. */
static void input_flush(void) {
  while (attach_in >= 0 && inq_off < inq_len) {
    ssize_t w = write(attach_in, inq + inq_off, inq_len - inq_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return;
    if (w < 0) { inq_off = inq_len; if (!attach_in_tty) inq_close = 1; break; } /* EPIPE: nobody reads */
    inq_off += (size_t)w;
  }
  inq_off = inq_len = 0;
  if (inq_close && attach_in >= 0) { close(attach_in); attach_in = -1; }
  inq_close = 0;
}

static void input_push(const char *p, size_t n) {
  if (attach_in < 0 || n == 0) return;
  if (inq_len + n > inq_cap) {
    size_t cap = inq_cap ? inq_cap : 65536;
    while (cap < inq_len + n) cap *= 2;
    char *q = realloc(inq, cap);
    if (!q) fail("out of memory for the container's input");
    inq = q;
    inq_cap = cap;
  }
  memcpy(inq + inq_len, p, n);
  inq_len += n;
  input_flush();
}

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

/* The end of the container's input, after what waits: ^D on a terminal, else its pipe closes. */
static void attach_close_stdin(void) {
  if (attach_in < 0) return;
  if (attach_in_tty) { input_push("\4", 1); return; }
  inq_close = 1;
  input_flush();
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
    if (h[0] == 0) input_push(data, chunk);
    if (h[0] == 1 && master >= 0 && chunk >= 4) {
      struct winsize ws = { .ws_row = (unsigned short)((unsigned char)data[0] << 8 | (unsigned char)data[1]),
                            .ws_col = (unsigned short)((unsigned char)data[2] << 8 | (unsigned char)data[3]) };
      ioctl(master, TIOCSWINSZ, &ws);
    }
    left -= chunk;
  }
  if (h[0] == 2 && attach_stdin_once) attach_close_stdin();
}
