/*
 * berth-net: plugs a network namespace into a bridge, or unplugs it, in one process through
 * rtnetlink (no `ip` execs: on these machines every exec from Node costs several milliseconds,
 * and an attach needed two). berth's TypeScript decides everything; this only carries it out.
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
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct msg { struct nlmsghdr h; char buf[2048]; };
static unsigned seq;

static void fail(const char *what, int err) {
    fprintf(stderr, "berth-net: %s: %s\n", what, strerror(err));
    exit(1);
}

static struct rtattr *add_attr(struct msg *m, unsigned short type, const void *data, size_t len) {
    struct rtattr *a = (struct rtattr *)((char *)m + NLMSG_ALIGN(m->h.nlmsg_len));
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(a), data, len);
    m->h.nlmsg_len = NLMSG_ALIGN(m->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static void end_nest(struct msg *m, struct rtattr *nest) {
    nest->rta_len = (unsigned short)((char *)m + m->h.nlmsg_len - (char *)nest);
}

static void init_msg(struct msg *m, unsigned short type, unsigned short flags, const void *hdr, size_t hlen) {
    memset(m, 0, sizeof *m);
    m->h.nlmsg_len = (unsigned)NLMSG_LENGTH(hlen);
    m->h.nlmsg_type = type;
    m->h.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
    m->h.nlmsg_seq = ++seq;
    memcpy(NLMSG_DATA(&m->h), hdr, hlen);
}

/* Sends one request and returns the kernel's answer: 0 or a positive errno. */
static int talk(int fd, struct msg *m) {
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (sendto(fd, m, m->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return errno;
    char buf[8192];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != m->h.nlmsg_seq) continue;
            if (h->nlmsg_type == NLMSG_ERROR) return -((struct nlmsgerr *)NLMSG_DATA(h))->error;
        }
    }
}

static int rtnl(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) fail("netlink socket", errno);
    return fd;
}

static int set_up(int fd, int index) {
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
    struct msg m;
    init_msg(&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
    return talk(fd, &m);
}

static int del_link(int fd, const char *name) {
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
    struct msg m;
    init_msg(&m, RTM_DELLINK, 0, &ifi, sizeof ifi);
    add_attr(&m, IFLA_IFNAME, name, strlen(name) + 1);
    int err = talk(fd, &m);
    return err == ENODEV ? 0 : err;
}

static int attach(char **argv, int argc) {
    const char *bridge = argv[0], *veth = argv[1], *nspath = argv[2], *iface = argv[3], *cidr = argv[4];
    const char *gateway = argc > 5 ? argv[5] : NULL;
    if (strlen(veth) >= IFNAMSIZ || strlen(iface) >= IFNAMSIZ) fail("interface name too long", EINVAL);
    char ipbuf[32];
    snprintf(ipbuf, sizeof ipbuf, "%s", cidr);
    char *slash = strchr(ipbuf, '/');
    if (!slash) fail("address must be IP/PREFIX", EINVAL);
    *slash = 0;
    int prefix = atoi(slash + 1);
    struct in_addr ip, gw;
    if (inet_pton(AF_INET, ipbuf, &ip) != 1 || prefix < 1 || prefix > 32) fail("address must be IP/PREFIX", EINVAL);
    if (gateway && inet_pton(AF_INET, gateway, &gw) != 1) fail("gateway is not an IPv4 address", EINVAL);

    int host = rtnl();
    unsigned master = if_nametoindex(bridge);
    if (!master) fail(bridge, errno);
    int ns = open(nspath, O_RDONLY | O_CLOEXEC);
    if (ns < 0) fail(nspath, errno);

    /* The pair: host end up and on the bridge, the peer created directly in the namespace. */
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
    struct msg m;
    init_msg(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
    add_attr(&m, IFLA_IFNAME, veth, strlen(veth) + 1);
    add_attr(&m, IFLA_MASTER, &master, sizeof master);
    struct rtattr *info = add_attr(&m, IFLA_LINKINFO, NULL, 0);
    add_attr(&m, IFLA_INFO_KIND, "veth", 5);
    struct rtattr *data = add_attr(&m, IFLA_INFO_DATA, NULL, 0);
    struct rtattr *peer = add_attr(&m, VETH_INFO_PEER, NULL, 0);
    struct ifinfomsg peer_ifi = { .ifi_family = AF_UNSPEC };
    m.h.nlmsg_len += (unsigned)NLMSG_ALIGN(sizeof peer_ifi);
    memcpy(RTA_DATA(peer), &peer_ifi, sizeof peer_ifi);
    add_attr(&m, IFLA_IFNAME, iface, strlen(iface) + 1);
    add_attr(&m, IFLA_NET_NS_FD, &ns, sizeof ns);
    end_nest(&m, peer);
    end_nest(&m, data);
    end_nest(&m, info);
    int err = talk(host, &m);
    if (err) {
        char what[128];
        snprintf(what, sizeof what, "creating veth %s (peer %s in %s)", veth, iface, nspath);
        fail(what, err);
    }

    /* Hairpin on the bridge port: a container that reaches its own published port through a
     * host address gets the answer back through the port it came in by. */
    unsigned vidx = if_nametoindex(veth);
    const char *step = "setting hairpin mode on the bridge port";
    if (!vidx) { err = errno; goto undo_host; }
    struct ifinfomsg port = { .ifi_family = AF_UNSPEC, .ifi_index = (int)vidx };
    init_msg(&m, RTM_NEWLINK, 0, &port, sizeof port);
    info = add_attr(&m, IFLA_LINKINFO, NULL, 0);
    add_attr(&m, IFLA_INFO_SLAVE_KIND, "bridge", 7);
    data = add_attr(&m, IFLA_INFO_SLAVE_DATA, NULL, 0);
    unsigned char on = 1;
    add_attr(&m, IFLA_BRPORT_MODE, &on, 1);
    end_nest(&m, data);
    end_nest(&m, info);
    if ((err = talk(host, &m))) goto undo_host;

    /* Inside the namespace: a socket made there talks to its own link table. */
    step = "entering the namespace";
    if (setns(ns, CLONE_NEWNET) != 0) { err = errno; goto undo_host; }
    int in = rtnl();
    unsigned lo = if_nametoindex("lo"), idx = if_nametoindex(iface);
    step = "finding the interfaces";
    if (!lo || !idx) { err = errno ? errno : ENODEV; goto undo; }
    step = "setting lo up";
    if ((err = set_up(in, (int)lo))) goto undo;
    struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = (unsigned char)prefix, .ifa_scope = RT_SCOPE_UNIVERSE, .ifa_index = idx };
    init_msg(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
    add_attr(&m, IFA_LOCAL, &ip, 4);
    add_attr(&m, IFA_ADDRESS, &ip, 4);
    if (prefix < 31) { /* the broadcast address, as podman's netavark and docker set it */
        struct in_addr brd = { .s_addr = htonl(ntohl(ip.s_addr) | (0xffffffffu >> prefix)) };
        add_attr(&m, IFA_BROADCAST, &brd, 4);
    }
    step = "adding the address";
    if ((err = talk(in, &m))) goto undo;
    step = "setting the interface up";
    if ((err = set_up(in, (int)idx))) goto undo;
    if (gateway) {
        struct rtmsg rt = { .rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
                            .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST };
        init_msg(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
        add_attr(&m, RTA_GATEWAY, &gw, 4);
        add_attr(&m, RTA_OIF, &idx, sizeof idx);
        unsigned metric = 100; /* as netavark's default route */
        add_attr(&m, RTA_PRIORITY, &metric, sizeof metric);
        step = "adding the default route";
        if ((err = talk(in, &m))) goto undo;
    }
    return 0;

undo:
    del_link(in, iface); /* the host end goes with it */
    fail(step, err);
undo_host:
    del_link(host, veth);
    fail(step, err);
    return 1;
}

int main(int argc, char **argv) {
    if (argc >= 7 && strcmp(argv[1], "attach") == 0 && argc <= 8) return attach(argv + 2, argc - 2);
    if (argc >= 2 && strcmp(argv[1], "detach") == 0) {
        int fd = rtnl();
        for (int i = 2; i < argc; i++) {
            int err = del_link(fd, argv[i]);
            if (err) fail(argv[i], err);
        }
        return 0;
    }
    fprintf(stderr, "usage: berth-net attach BRIDGE VETH NETNS_PATH IFACE IP/PREFIX [GATEWAY]\n"
                    "       berth-net detach LINK...\n");
    return 2;
}
