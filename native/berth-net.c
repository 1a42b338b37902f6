/*
 * berth-net: plugs a network namespace into a bridge, or unplugs it, in one process through
 * rtnetlink (netlink.h; no `ip` execs: on these machines every exec from Node costs several
 * milliseconds, and an attach needed two). berth's TypeScript decides everything; this only
 * carries it out. (berth-init plugs the namespaces of berth's own containers itself.)
 *
 *   berth-net attach BRIDGE VETH NETNS_PATH IFACE IP/PREFIX [GATEWAY]
 *       creates the veth pair VETH (host end, up, on BRIDGE) / IFACE (moved into the namespace),
 *       then inside: lo up, IP/PREFIX (with its broadcast address) on IFACE, IFACE up, and a default route via GATEWAY when
 *       given. On failure the pair is deleted again.
 *   berth-net detach LINK...
 *       deletes the links (a veth's peer goes with it); links that do not exist are fine.
 *
 * Exit status 0 on success, 1 with one line on stderr otherwise. libc only.
 */
#include "netlink.h"

static void fail(const char *what, int err) {
    fprintf(stderr, "berth-net: %s: %s\n", what, strerror(err));
    exit(1);
}

static int rtnl(void) {
    int fd = nl_socket();
    if (fd < 0) fail("netlink socket", errno);
    return fd;
}

int main(int argc, char **argv) {
    if (argc >= 7 && strcmp(argv[1], "attach") == 0 && argc <= 8) {
        const char *nspath = argv[4];
        int ns = open(nspath, O_RDONLY | O_CLOEXEC);
        if (ns < 0) fail(nspath, errno);
        const char *step;
        int err = nl_attach(rtnl(), ns, argv[2], argv[3], argv[5], argv[6], argc > 7 ? argv[7] : NULL, &step);
        if (err == EINVAL && strcmp(step, "parsing the address") == 0) fail("address must be IP/PREFIX (and the gateway an IPv4 address)", err);
        if (err) {
            char what[160];
            snprintf(what, sizeof what, "%s (veth %s, peer %s in %s)", step, argv[3], argv[5], nspath);
            fail(what, err);
        }
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "detach") == 0) {
        int fd = rtnl();
        for (int i = 2; i < argc; i++) {
            int err = nl_del_link(fd, argv[i]);
            if (err) fail(argv[i], err);
        }
        return 0;
    }
    fprintf(stderr, "usage: berth-net attach BRIDGE VETH NETNS_PATH IFACE IP/PREFIX [GATEWAY]\n"
                    "       berth-net detach LINK...\n");
    return 2;
}
