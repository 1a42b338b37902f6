/*
 * rtnetlink, just enough to plug a network namespace into a bridge: a veth pair (host end up,
 * on the bridge, in hairpin mode; the peer made directly in the namespace), then inside: lo up,
 * the address (with its broadcast), the interface up and a default route via the gateway.
 * Used by berth-net (one exec from Node) and by berth-init's stage 1, which plugs the container's
 * namespace right after cloning it (no exec at all). libc only; header-only, static functions.
 *
 * nl_attach returns 0, or an errno with `*step` saying what failed; it deletes the pair again
 * when a later step fails. The caller's network namespace is unchanged when it returns.
 */
#ifndef BERTH_NETLINK_H
#define BERTH_NETLINK_H
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

struct nl_msg { struct nlmsghdr h; char buf[2048]; };
static unsigned nl_seq;

static struct rtattr *nl_add_attr(struct nl_msg *m, unsigned short type, const void *data, size_t len) {
    struct rtattr *a = (struct rtattr *)((char *)m + NLMSG_ALIGN(m->h.nlmsg_len));
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(a), data, len);
    m->h.nlmsg_len = NLMSG_ALIGN(m->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static void nl_end_nest(struct nl_msg *m, struct rtattr *nest) {
    nest->rta_len = (unsigned short)((char *)m + m->h.nlmsg_len - (char *)nest);
}

static void nl_init(struct nl_msg *m, unsigned short type, unsigned short flags, const void *hdr, size_t hlen) {
    memset(m, 0, sizeof *m);
    m->h.nlmsg_len = (unsigned)NLMSG_LENGTH(hlen);
    m->h.nlmsg_type = type;
    m->h.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
    m->h.nlmsg_seq = ++nl_seq;
    memcpy(NLMSG_DATA(&m->h), hdr, hlen);
}

/*
 * Sends one request and returns the kernel's answer: 0 or a positive errno. With `index`, the
 * request asks for a link (RTM_GETLINK) and its answer is the link's index (ENODEV: none).
 */
static int nl_exchange(int fd, struct nl_msg *m, unsigned *index) {
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
            if (h->nlmsg_type == NLMSG_ERROR) {
                int e = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
                return index && !e ? ENODEV : e;
            }
            if (index && h->nlmsg_type == RTM_NEWLINK) {
                *index = (unsigned)((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index;
                return 0;
            }
        }
    }
}

static int nl_talk(int fd, struct nl_msg *m) {
    return nl_exchange(fd, m, NULL);
}

/* An rtnetlink socket in the caller's network namespace, or -1. */
static int nl_socket(void) {
    return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
}

static int nl_set_up(int fd, int index) {
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
    struct nl_msg m;
    nl_init(&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
    return nl_talk(fd, &m);
}

/* The index of a link in the namespace of `fd`'s socket (if_nametoindex asks the caller's). */
static int nl_index(int fd, const char *name, unsigned *index) {
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
    struct nl_msg m;
    nl_init(&m, RTM_GETLINK, 0, &ifi, sizeof ifi);
    m.h.nlmsg_flags = NLM_F_REQUEST;
    nl_add_attr(&m, IFLA_IFNAME, name, strlen(name) + 1);
    return nl_exchange(fd, &m, index);
}

static int nl_del_link(int fd, const char *name) {
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
    struct nl_msg m;
    nl_init(&m, RTM_DELLINK, 0, &ifi, sizeof ifi);
    nl_add_attr(&m, IFLA_IFNAME, name, strlen(name) + 1);
    int err = nl_talk(fd, &m);
    return err == ENODEV ? 0 : err;
}

/*
 * Plugs the namespace `ns` (an open nsfs file) into BRIDGE as described above. `host` is an
 * rtnetlink socket in the bridge's namespace; the steps inside use a socket made in `ns`.
 */
static int nl_attach(int host, int ns, const char *bridge, const char *veth, const char *iface, const char *cidr, const char *gateway, const char **step) {
    *step = "parsing the address";
    if (strlen(veth) >= IFNAMSIZ || strlen(iface) >= IFNAMSIZ) return EINVAL;
    char ipbuf[32];
    snprintf(ipbuf, sizeof ipbuf, "%s", cidr);
    char *slash = strchr(ipbuf, '/');
    if (!slash) return EINVAL;
    *slash = 0;
    int prefix = atoi(slash + 1);
    struct in_addr ip, gw;
    if (inet_pton(AF_INET, ipbuf, &ip) != 1 || prefix < 1 || prefix > 32) return EINVAL;
    if (gateway && inet_pton(AF_INET, gateway, &gw) != 1) return EINVAL;

    *step = "finding the bridge";
    unsigned master = 0;
    int err = nl_index(host, bridge, &master);
    if (err) return err;

    /* The pair: host end up and on the bridge, the peer created directly in the namespace. */
    *step = "creating the veth pair";
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
    struct nl_msg m;
    nl_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
    nl_add_attr(&m, IFLA_IFNAME, veth, strlen(veth) + 1);
    nl_add_attr(&m, IFLA_MASTER, &master, sizeof master);
    struct rtattr *info = nl_add_attr(&m, IFLA_LINKINFO, NULL, 0);
    nl_add_attr(&m, IFLA_INFO_KIND, "veth", 5);
    struct rtattr *data = nl_add_attr(&m, IFLA_INFO_DATA, NULL, 0);
    struct rtattr *peer = nl_add_attr(&m, VETH_INFO_PEER, NULL, 0);
    struct ifinfomsg peer_ifi = { .ifi_family = AF_UNSPEC };
    m.h.nlmsg_len += (unsigned)NLMSG_ALIGN(sizeof peer_ifi);
    memcpy(RTA_DATA(peer), &peer_ifi, sizeof peer_ifi);
    nl_add_attr(&m, IFLA_IFNAME, iface, strlen(iface) + 1);
    nl_add_attr(&m, IFLA_NET_NS_FD, &ns, sizeof ns);
    nl_end_nest(&m, peer);
    nl_end_nest(&m, data);
    nl_end_nest(&m, info);
    if ((err = nl_talk(host, &m))) return err;

    /* Hairpin on the bridge port: a container that reaches its own published port through a
     * host address gets the answer back through the port it came in by. */
    *step = "setting hairpin mode on the bridge port";
    unsigned vidx = 0;
    if ((err = nl_index(host, veth, &vidx))) goto undo_host;
    struct ifinfomsg port = { .ifi_family = AF_UNSPEC, .ifi_index = (int)vidx };
    nl_init(&m, RTM_NEWLINK, 0, &port, sizeof port);
    info = nl_add_attr(&m, IFLA_LINKINFO, NULL, 0);
    nl_add_attr(&m, IFLA_INFO_SLAVE_KIND, "bridge", 7);
    data = nl_add_attr(&m, IFLA_INFO_SLAVE_DATA, NULL, 0);
    unsigned char on = 1;
    nl_add_attr(&m, IFLA_BRPORT_MODE, &on, 1);
    nl_end_nest(&m, data);
    nl_end_nest(&m, info);
    if ((err = nl_talk(host, &m))) goto undo_host;

    /* Inside the namespace: a socket made there talks to its own link table. */
    *step = "entering the namespace";
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) { err = errno; goto undo_host; }
    if (setns(ns, CLONE_NEWNET) != 0) { err = errno; close(self); goto undo_host; }
    int in = nl_socket();
    int back = setns(self, CLONE_NEWNET);
    close(self);
    if (back != 0) { err = errno; if (in >= 0) close(in); goto undo_host; }
    if (in < 0) { err = errno; goto undo_host; }
    unsigned lo = 0, idx = 0;
    *step = "finding the interfaces";
    if ((err = nl_index(in, "lo", &lo)) || (err = nl_index(in, iface, &idx))) goto undo;
    *step = "setting lo up";
    if ((err = nl_set_up(in, (int)lo))) goto undo;
    struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = (unsigned char)prefix, .ifa_scope = RT_SCOPE_UNIVERSE, .ifa_index = idx };
    nl_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
    nl_add_attr(&m, IFA_LOCAL, &ip, 4);
    nl_add_attr(&m, IFA_ADDRESS, &ip, 4);
    if (prefix < 31) { /* the broadcast address, as podman's netavark and docker set it */
        struct in_addr brd = { .s_addr = htonl(ntohl(ip.s_addr) | (0xffffffffu >> prefix)) };
        nl_add_attr(&m, IFA_BROADCAST, &brd, 4);
    }
    *step = "adding the address";
    if ((err = nl_talk(in, &m))) goto undo;
    *step = "setting the interface up";
    if ((err = nl_set_up(in, (int)idx))) goto undo;
    if (gateway) {
        struct rtmsg rt = { .rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
                            .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST };
        nl_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
        nl_add_attr(&m, RTA_GATEWAY, &gw, 4);
        nl_add_attr(&m, RTA_OIF, &idx, sizeof idx);
        unsigned metric = 100; /* as netavark's default route */
        nl_add_attr(&m, RTA_PRIORITY, &metric, sizeof metric);
        *step = "adding the default route";
        if ((err = nl_talk(in, &m))) goto undo;
    }
    close(in);
    return 0;

undo:
    nl_del_link(in, iface); /* the host end goes with it */
    close(in);
    return err;
undo_host:
    nl_del_link(host, veth);
    return err;
}

#endif
