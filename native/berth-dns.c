/*
 * berth-dns: the name server of one berth user network, as docker's embedded DNS and podman's
 * aardvark-dns. One process per network in use (not per container), started by the first
 * container that joins and stopped when the last one leaves.
 *
 *   berth-dns --pidfile FILE LISTEN_IP NAMES_FILE [UPSTREAM[:PORT]...]
 *
 * Answers A queries (and empty AAAA answers) for the names in NAMES_FILE, a hosts(5)-style file
 * ("IP name alias...") that berth rewrites (by rename) whenever a container joins or leaves; the
 * file is read again when its inode or mtime changes. Every other query is relayed to the
 * upstream servers (the host's), so names outside the network resolve too. Listens on UDP
 * LISTEN_IP:53 (the network's gateway). Detaches from its parent once the socket is bound: the
 * exit status tells the caller whether it could listen. libc only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NAMES 4096
#define MAX_UPSTREAMS 4
#define MAX_PENDING 256

struct name { char name[256]; struct in_addr addr; };
static struct name names[MAX_NAMES];
static int nnames;
static const char *names_path;
static struct stat names_st;

static void load_names(void) {
    struct stat st;
    if (stat(names_path, &st) != 0) { nnames = 0; return; }
    if (st.st_ino == names_st.st_ino && st.st_mtim.tv_sec == names_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == names_st.st_mtim.tv_nsec && st.st_size == names_st.st_size) return;
    FILE *f = fopen(names_path, "r");
    if (!f) return;
    names_st = st;
    nnames = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *save, *ip = strtok_r(line, " \t\r\n", &save);
        struct in_addr a;
        if (!ip || ip[0] == '#' || inet_pton(AF_INET, ip, &a) != 1) continue;
        for (char *n = strtok_r(NULL, " \t\r\n", &save); n && nnames < MAX_NAMES; n = strtok_r(NULL, " \t\r\n", &save)) {
            if (strlen(n) >= sizeof names[0].name) continue;
            for (char *c = n; *c; c++) *c = (char)tolower((unsigned char)*c);
            strcpy(names[nnames].name, n);
            names[nnames++].addr = a;
        }
    }
    fclose(f);
}

/* Reads the question's name (no compression in questions) into out, lower-cased, without the
 * final dot. Returns the offset after the name, or -1. */
static int read_qname(const unsigned char *m, int len, int off, char *out, int outlen) {
    int o = 0;
    for (;;) {
        if (off >= len) return -1;
        int l = m[off++];
        if (l == 0) break;
        if (l > 63 || off + l > len || o + l + 2 > outlen) return -1;
        if (o) out[o++] = '.';
        for (int i = 0; i < l; i++) out[o++] = (char)tolower(m[off + i]);
        off += l;
    }
    out[o] = 0;
    return off;
}

struct pending { int used; uint16_t id, client_id; struct sockaddr_in client; time_t at; };
static struct pending pend[MAX_PENDING];
static uint16_t next_id;

static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

int main(int argc, char **argv) {
    const char *pidfile = NULL;
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "--pidfile") == 0) { pidfile = argv[2]; a = 3; }
    if (argc - a < 2) {
        fprintf(stderr, "usage: berth-dns --pidfile FILE LISTEN_IP NAMES_FILE [UPSTREAM[:PORT]...]\n");
        return 2;
    }
    struct sockaddr_in listen_at = { .sin_family = AF_INET, .sin_port = htons(53) };
    if (inet_pton(AF_INET, argv[a], &listen_at.sin_addr) != 1) { fprintf(stderr, "berth-dns: %s is not an IPv4 address\n", argv[a]); return 2; }
    names_path = argv[a + 1];
    struct sockaddr_in up[MAX_UPSTREAMS];
    int nup = 0;
    for (int i = a + 2; i < argc && nup < MAX_UPSTREAMS; i++) {
        char host[64];
        int port = 53;
        snprintf(host, sizeof host, "%s", argv[i]);
        char *colon = strchr(host, ':');
        if (colon) { *colon = 0; port = atoi(colon + 1); }
        memset(&up[nup], 0, sizeof up[nup]);
        up[nup].sin_family = AF_INET;
        up[nup].sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &up[nup].sin_addr) == 1 && port > 0 && port < 65536) nup++;
    }

    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0 || u < 0) { perror("berth-dns: socket"); return 1; }
    /* No SO_REUSEADDR: a second responder for the same network cannot bind, which is what we want. */
    if (bind(s, (struct sockaddr *)&listen_at, sizeof listen_at) != 0) {
        fprintf(stderr, "berth-dns: cannot listen on %s:53: %s\n", argv[a], strerror(errno));
        return 1;
    }
    /* Bound: detach (the caller waits for this first process only). */
    pid_t pid = fork();
    if (pid < 0) { perror("berth-dns: fork"); return 1; }
    if (pid > 0) _exit(0);
    setsid();
    signal(SIGHUP, SIG_IGN);
    if (fork() > 0) _exit(0);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) { dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2); if (devnull > 2) close(devnull); }
    if (chdir("/") != 0) { /* nothing to do */ }
    if (pidfile) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp%d", pidfile, (int)getpid());
        FILE *f = fopen(tmp, "w");
        if (f) { fprintf(f, "%d\n", (int)getpid()); fclose(f); rename(tmp, pidfile); }
    }
    srand((unsigned)(time(NULL) ^ getpid()));
    next_id = (uint16_t)rand();

    unsigned char m[4096];
    struct pollfd fds[2] = { { .fd = s, .events = POLLIN }, { .fd = u, .events = POLLIN } };
    for (;;) {
        if (poll(fds, 2, 1000) < 0 && errno != EINTR) return 1;
        time_t now = time(NULL);
        for (int i = 0; i < MAX_PENDING; i++) if (pend[i].used && now - pend[i].at > 5) pend[i].used = 0;
        if (fds[1].revents & POLLIN) {
            struct sockaddr_in from; socklen_t fl = sizeof from;
            ssize_t n = recvfrom(u, m, sizeof m, 0, (struct sockaddr *)&from, &fl);
            if (n >= 12) {
                uint16_t id = get16(m);
                for (int i = 0; i < MAX_PENDING; i++) {
                    if (!pend[i].used || pend[i].id != id) continue;
                    int known = 0;
                    for (int k = 0; k < nup; k++) known |= from.sin_addr.s_addr == up[k].sin_addr.s_addr && from.sin_port == up[k].sin_port;
                    if (!known) break;
                    put16(m, pend[i].client_id);
                    sendto(s, m, (size_t)n, 0, (struct sockaddr *)&pend[i].client, sizeof pend[i].client);
                    pend[i].used = 0;
                    break;
                }
            }
        }
        if (!(fds[0].revents & POLLIN)) continue;
        struct sockaddr_in client; socklen_t cl = sizeof client;
        ssize_t n = recvfrom(s, m, sizeof m, 0, (struct sockaddr *)&client, &cl);
        if (n < 12 || (m[2] & 0x80) || get16(m + 4) != 1) continue; /* a query with one question */
        char q[256];
        int off = read_qname(m, (int)n, 12, q, sizeof q);
        if (off < 0 || off + 4 > n) continue;
        uint16_t qtype = get16(m + off), qclass = get16(m + off + 2);
        int qend = off + 4;
        load_names();
        int found = 0;
        for (int i = 0; i < nnames; i++) if (strcmp(names[i].name, q) == 0) found++;
        if (found && qclass == 1 && ((m[2] >> 3) & 15) == 0) {
            /* Our answer: the question, then one A record per address (none for other types). */
            unsigned char r[512];
            if (qend > (int)sizeof r) continue;
            memcpy(r, m, (size_t)qend);
            r[2] = (unsigned char)(0x84 | (m[2] & 0x01)); /* QR, AA, RD copied */
            r[3] = 0x80;                                   /* RA, NOERROR */
            put16(r + 8, 0); put16(r + 10, 0);
            int len = qend, an = 0;
            for (int i = 0; i < nnames && qtype == 1 && len + 16 <= (int)sizeof r; i++) {
                if (strcmp(names[i].name, q) != 0) continue;
                put16(r + len, 0xc00c); put16(r + len + 2, 1); put16(r + len + 4, 1);
                put16(r + len + 6, 0); put16(r + len + 8, 0); /* TTL 0: names change as containers come and go */
                put16(r + len + 10, 4);
                memcpy(r + len + 12, &names[i].addr, 4);
                len += 16; an++;
            }
            put16(r + 6, (uint16_t)an);
            sendto(s, r, (size_t)len, 0, (struct sockaddr *)&client, cl);
            continue;
        }
        if (nup == 0) {
            m[2] |= 0x80; m[3] = (unsigned char)((m[3] & 0xf0) | 5); /* REFUSED: nowhere to ask */
            sendto(s, m, (size_t)n, 0, (struct sockaddr *)&client, cl);
            continue;
        }
        int slot = -1;
        for (int i = 0; i < MAX_PENDING; i++) if (!pend[i].used) { slot = i; break; }
        if (slot < 0) continue;
        pend[slot] = (struct pending){ .used = 1, .id = next_id++, .client_id = get16(m), .client = client, .at = now };
        put16(m, pend[slot].id);
        for (int k = 0; k < nup; k++) sendto(u, m, (size_t)n, 0, (struct sockaddr *)&up[k], sizeof up[k]);
    }
}
