/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdpwall ABI: the only header shared between the BPF programs and user space.
 *
 * It holds names and layouts, nothing else. Its one user-space mirror is
 * src/datapath/abi.ts; test/abi.test.ts checks sizes, offsets and enum values
 * of both against the BTF of the compiled object, so change them together.
 *
 * Rules for every struct here:
 *  - fixed-width types only, explicit padding, no implicit holes (map keys are
 *    hashed and compared as raw bytes, so a hole is a bug);
 *  - addresses and ports stay in network byte order (__be*), as on the wire;
 *    everything else is host order;
 *  - sizes are multiples of 8 so per-CPU values need no rounding.
 */
#ifndef XDPWALL_ABI_H
#define XDPWALL_ABI_H

#include <linux/types.h>

/* Overridable (-DXW_ABI_VERSION=N) so tests can build an object of another version. */
#ifndef XW_ABI_VERSION
#define XW_ABI_VERSION 4
#endif

/*
 * Object names user space looks up (xdp/build/xdpwall.bpf.o):
 *   programs  xw_ingress   XDP, attached per interface
 *             xw_egress    TC clsact egress, same interfaces
 *   maps      xw_src_v4, xw_dst_v4   LPM_TRIE  xw_lpm_v4_key -> xw_rule_value
 *             xw_src_v6, xw_dst_v6   LPM_TRIE  xw_lpm_v6_key -> xw_rule_value
 *             xw_src_host_v4, xw_dst_host_v4  HASH  __be32 -> xw_rule_value
 *             xw_src_host_v6, xw_dst_host_v6  HASH  xw_host_v6_key -> xw_rule_value
 *             xw_src_dir24, xw_dst_dir24      ARRAY[2^23]  __u32 pair -> __u64 (two slots)
 *             xw_src_dir24_l2, xw_dst_dir24_l2  ARRAY[blocks x 128]  -> __u64 (two slots)
 *             xw_rule_stats          PERCPU_HASH  __u32 rule_id -> xw_counter (blocks, lists)
 *             xw_rule_hit_cache      PERCPU_ARRAY[XW_HIT_CACHE_SLOTS]  -> xw_hit_cache ("block hit cache")
 *             xw_slot_hits           PERCPU_ARRAY  policy rule slot -> xw_counter ("rule slots")
 *             xw_stats               PERCPU_ARRAY xw_stats_index() -> xw_counter
 *             xw_ifslots             ARRAY[2^16]  __u32 ifindex -> __u32 interface slot
 *             xw_flows               LRU_HASH (shared, atomic counters)  xw_flow_key -> xw_flow_value
 *             xw_config              ARRAY[1]  __u32 0 -> xw_config
 *             xw_events, xw_event_cfg, xw_event_stats  (see "events" below)
 *   .rodata   xw_abi.version         XW_ABI_VERSION the object was built with
 * The object also holds maps that are not part of this ABI (the data plane's
 * per-CPU scratch state, xw_pkt_scratch); user space leaves them alone.
 */

/* Default capacities; the loader overrides max_entries from configuration. */
#define XW_DEFAULT_CIDR_V4_ENTRIES (1u << 20) /* 1,048,576 prefixes */
#define XW_DEFAULT_CIDR_V6_ENTRIES (1u << 18) /*   262,144 prefixes */
#define XW_DEFAULT_FLOW_ENTRIES    (1u << 18) /*   262,144 flows */
#define XW_DEFAULT_RULE_ENTRIES    (XW_DEFAULT_CIDR_V4_ENTRIES + XW_DEFAULT_CIDR_V6_ENTRIES)
#define XW_DEFAULT_DIR24_BLOCKS    4096       /* second-level DIR-24 blocks per direction */

/*
 * Counters are a per-CPU array indexed by (interface slot, direction,
 * verdict, reason). The control plane gives every attached interface a slot
 * in xw_ifslots (indexed by ifindex); slot 0 collects interfaces without one
 * (and ifindexes >= XW_IFSLOT_IFINDEX_MAX).
 */
#define XW_MAX_IFSLOTS          64
#define XW_IFSLOT_IFINDEX_MAX   (1u << 16)
#define XW_STATS_REASONS        32 /* room for every enum xw_reason, with headroom */
#define XW_STATS_ENTRIES        (XW_MAX_IFSLOTS * 2 /* dir */ * 2 /* verdict */ * XW_STATS_REASONS)

/* Parser bounds, fixed at compile time so the verifier sees bounded loops. */
#define XW_MAX_VLAN_DEPTH 2 /* 802.1ad outer + 802.1Q inner; a third tag is malformed */
#define XW_MAX_IPV6_EXT   6 /* extension headers walked before giving up */

enum xw_direction {
	XW_DIR_INGRESS = 0, /* XDP on receive */
	XW_DIR_EGRESS  = 1, /* TC on transmit */
	XW_DIR__MAX,
};

enum xw_verdict {
	XW_VERDICT_PASS = 0,
	XW_VERDICT_DROP = 1,
	XW_VERDICT__MAX,
};

/*
 * Why a packet got its verdict. Every packet is counted under exactly one
 * reason. Reasons below XW_REASON__FIRST_DROP pass; the others drop (on
 * ingress) or are only counted (on egress, which does not filter yet).
 */
enum xw_reason {
	XW_REASON_PASS_NO_MATCH     = 0,  /* IP packet that matched no rule */
	XW_REASON_PASS_NON_IP       = 1,  /* ARP, LLDP, ...: never filtered */
	XW_REASON_PASS_ALLOW        = 2,  /* matched an allow rule (reserved) */
	XW_REASON_PASS_FAILSAFE     = 3,  /* a failsafe entry (configuration file only) */
	XW_REASON_PASS_RULE         = 4,  /* a rule with action pass */
	XW_REASON_PASS_REPLY        = 5,  /* default drop, but a flow this host opened */
	XW_REASON_WOULD_DROP        = 6,  /* a dry-run block or drop rule matched */
	XW_REASON_PASS_LOG          = 7,  /* a rule with action log: passed and counted */
	XW_REASON_WOULD_RATELIMIT   = 8,  /* a dry-run ratelimit rule's bucket was empty: passed */
	XW_REASON__FIRST_DROP       = 16,
	XW_REASON_DENY_SRC_CIDR     = 16, /* source address in a deny prefix */
	XW_REASON_DENY_DST_CIDR     = 17, /* destination address in a deny prefix */
	XW_REASON_MALFORMED_L2      = 18, /* truncated Ethernet/VLAN, too many tags */
	XW_REASON_MALFORMED_IPV4    = 19, /* truncated, bad version/IHL/total length */
	XW_REASON_MALFORMED_IPV6    = 20, /* truncated fixed header or extension */
	XW_REASON_IPV6_EXT_LIMIT    = 21, /* more extension headers than XW_MAX_IPV6_EXT */
	XW_REASON_MALFORMED_L4      = 22, /* truncated TCP/UDP/ICMP header */
	XW_REASON_DROP_RULE         = 23, /* a rule with action drop */
	XW_REASON_DROP_POLICY       = 24, /* no rule matched and the hook's policy is drop */
	XW_REASON_RATELIMIT         = 25, /* a ratelimit rule's bucket was empty */
	XW_REASON__MAX              = 26,
};

/* What a CIDR rule does when it matches. */
enum xw_action {
	XW_ACTION_DENY  = 1,
	XW_ACTION_ALLOW = 2, /* reserved for allow-list mode; a policy rule's "pass" */
	XW_ACTION_LOG   = 3, /* policy rules only: pass and count */
	XW_ACTION_RATELIMIT = 4, /* policy rules only: pass under the rate (xw_rl_conf), drop over it */
};

/*
 * xw_flow_value.cached_verdict, kept for the layout only: the data plane
 * decides every packet before the flow table, so it neither reads nor
 * writes a cached verdict any more (entries made by earlier versions may
 * still hold XW_CACHE_PASS; nothing reads it).
 */
enum xw_cache {
	XW_CACHE_NONE = 0,
	XW_CACHE_PASS = 1,
};

/*
 * Runtime settings the control plane writes, in xw_config[0], after the
 * rule tables changed. rules_gen is kept for the layout of pinned maps
 * only: it numbered rule sets for a flow-cached verdict that no longer
 * exists, and neither side reads or writes it.
 */
struct xw_config {
	__u32 rules_gen;      /* unused (see above) */
	__u32 features;       /* enum xw_feature bits: stages that are configured */
	__u32 v4_default[2];  /* DIR-24 slot value of an IPv4 /0 rule, [0] source, [1] destination */
};

/*
 * xw_config.features: a stage whose bit is clear is skipped with one test,
 * so a deployment pays nothing for lookups it has no rules for (a plain
 * source blocklist never probes the destination tables). The control plane
 * sets a bit after the tables hold the rules and clears it after they are
 * gone. Later stages (policy rules, rate limits, sampling) take bits here.
 */
enum xw_feature {
	XW_FEATURE_SRC_V4 = 1u << 0, /* IPv4 source rules exist */
	XW_FEATURE_DST_V4 = 1u << 1, /* IPv4 destination rules exist */
	XW_FEATURE_SRC_V6 = 1u << 2,
	XW_FEATURE_DST_V6 = 1u << 3,
	/*
	 * xw_block_meta may hold entries (some block has an expiry or is a dry
	 * run): a denied packet asks it only then, so a plain blocklist pays no
	 * hash lookup for metadata it does not have. Set before the first entry
	 * is written, cleared after the last is deleted.
	 */
	XW_FEATURE_BLOCK_META = 1u << 4,
	/*
	 * xw_v6_filter also holds a bit per IPv4 host route (hash below, "IPv6
	 * prefixes by length"), so an IPv4 address no /32 can match skips the
	 * host hash probe. Set by the control plane that keeps the bits; clear
	 * (tables written by hand, as tests do): every IPv4 lookup probes.
	 */
	XW_FEATURE_V4_HOST_FILTER = 1u << 5,
	/*
	 * Observation, from bit 16 up (filtering stages take the low bits):
	 * sampled events are emitted only while the control plane has a
	 * consumer attached (an SSE or pcap client), see "events" below.
	 */
	XW_FEATURE_EVENTS = 1u << 16,
};

/* Bits of xw_rule_value.flags. */
enum xw_rule_flags {
	XW_RULE_F_DRY_RUN = 1u << 0, /* count as if applied, but pass */
	/*
	 * A policy rule that stands for an interface's own default policy
	 * (configured per interface): placed after every real rule of its hook,
	 * it decides like the default (DENY: drop_policy, replies pass; ALLOW:
	 * pass_no_match) and is counted under no rule.
	 */
	XW_RULE_F_IFACE_DEFAULT = 1u << 1,
};

/*
 * LPM trie keys. prefixlen counts bits of addr only. The struct is 4-byte
 * aligned like struct bpf_lpm_trie_key so the address starts at offset 4.
 */
struct xw_lpm_v4_key {
	__u32 prefixlen;
	__be32 addr;
};

struct xw_lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16]; /* network byte order */
};

/*
 * Host routes (/32, /128) live in exact-match hashes, not in the tries: a
 * host route is always the longest match, so one hash lookup settles it,
 * and blocklists (fail2ban, CrowdSec) are mostly single addresses. IPv4
 * keys are a bare __be32.
 */
struct xw_host_v6_key {
	__u8 addr[16]; /* network byte order */
};

/*
 * IPv4 network prefixes live in a DIR-24-8 table (DPDK's): one slot per /24
 * of the address space, indexed by the address's top 24 bits, holding the
 * rule of the longest prefix <= /24 covering that /24. A /24 that holds a
 * /25../31 prefix gets a block of 256 slots in the second level (one per
 * address of the /24) and its first-level slot says XW_DIR24_BLOCK and the
 * block number. Only when the blocks run out does a /24 fall back to the
 * trie, flagged XW_DIR24_DEEPER. A slot value of 0 means no prefix in the
 * tables covers the address: the /0 rule in xw_config.v4_default applies.
 *
 * Slots are u32 but stored two to an array element (__u64, low half =
 * even slot): an ARRAY rounds values up to 8 bytes, so u32 elements would
 * waste half of the 2^24-slot table. Not pinned: the control plane rebuilds
 * both levels on every start. Mirror: src/datapath/dir24.ts.
 */
#define XW_DIR24_SLOTS     (1u << 24)
#define XW_DIR24_PAIRS     (XW_DIR24_SLOTS / 2)
#define XW_DIR24_BLOCK_PAIRS 128      /* array elements of one 256-slot block */
#define XW_DIR24_DEEPER    (1u << 31) /* a /25../31 prefix lies here, no block: ask the trie */
#define XW_DIR24_ALLOW     (1u << 30) /* the covering rule allows */
#define XW_DIR24_BLOCK     (1u << 29) /* the rule mask holds a second-level block number */
#define XW_DIR24_RULE_MASK 0x1fffffffu /* its rule_id (or block); 0: no prefix covers */

/*
 * Value of every CIDR trie and host hash: which rule matched and what it does, not a bare
 * flag, so allow lists, dry-run and per-rule counters fit without a new ABI.
 */
struct xw_rule_value {
	__u32 rule_id; /* control-plane rule id; key of xw_rule_stats */
	__u8 action;   /* enum xw_action */
	__u8 flags;    /* enum xw_rule_flags */
	__u16 pad;
};

/* Packet and byte counter pair, used per CPU. */
struct xw_counter {
	__u64 packets;
	__u64 bytes;
};

/*
 * ---------------------------------------------------------- block hit cache
 * Blocks' and lists' hits live in xw_rule_stats (per-CPU hash by rule id,
 * entry made on a rule's first hit), behind a small per-CPU direct-mapped
 * write-back cache: element XW_HIT_CACHE_INDEX(rule_id) of
 * xw_rule_hit_cache, on each CPU, may hold hits of that rule not yet added
 * to the hash. A rule's hits = its xw_rule_stats entry (summed over CPUs)
 * + every CPU's cache element at its index whose rule_id is the rule's
 * (only while the hash entry exists: the data plane tags an element only
 * after making the rule's hash entry, and a deleted rule's element is
 * dropped, never added, when it is evicted).
 *
 * A packet of the element's rule: two increments (and the score). Another
 * rule's packet counts into the hash (as without the cache) and lowers the
 * score; at 0 the element is evicted: its hits are added to this CPU's
 * hash entry of its rule, and the new rule takes it with XW_HIT_CACHE_SCORE_NEW.
 * So a rule that keeps hitting keeps its element, and a flood spread over
 * many blocks pays one hash probe per packet plus an eviction every
 * XW_HIT_CACHE_SCORE_NEW packets per element, not one per packet.
 * Pinned with xw_rule_stats: hits survive a restart.
 */
#define XW_HIT_CACHE_BITS      10
#define XW_HIT_CACHE_SLOTS     (1u << XW_HIT_CACHE_BITS)
/* Fibonacci hashing: consecutive ids (AUTOINCREMENT) land far apart. */
#define XW_HIT_CACHE_INDEX(id) (((__u32)(id) * 0x9e3779b1u) >> (32 - XW_HIT_CACHE_BITS))
#define XW_HIT_CACHE_SCORE_NEW 8
#define XW_HIT_CACHE_SCORE_MAX 64

struct xw_hit_cache {
	__u32 rule_id;           /* 0: empty */
	__u32 score;             /* eviction credit, XW_HIT_CACHE_SCORE_* */
	struct xw_counter hits;  /* this CPU's hits of rule_id not yet in xw_rule_stats */
};

/*
 * How user space reports a counter: one per interface, direction, verdict
 * and reason. Not a map key any more (xw_stats is an array, see
 * XW_STATS_ENTRIES); the layout stays as the decoded form of an index.
 */
struct xw_stats_key {
	__u32 ifindex;
	__u8 direction; /* enum xw_direction */
	__u8 verdict;   /* enum xw_verdict */
	__u16 reason;   /* enum xw_reason */
};

/* Index of a counter in xw_stats. */
#define XW_STATS_INDEX(ifslot, dir, verdict, reason) \
	((((ifslot) * 2 + (dir)) * 2 + (verdict)) * XW_STATS_REASONS + (reason))

/*
 * Flow key, oriented from the remote peer towards this host: on ingress
 * (src, dst) are the packet's (saddr, daddr); on egress the TC program swaps
 * them, so both directions of a conversation share one key and one entry.
 * IPv4 addresses are stored as IPv4-mapped IPv6 (::ffff:a.b.c.d).
 * For ICMP and ICMPv6 echo request/reply, sport = dport = the echo identifier
 * (so a ping and its replies are one flow); for other ICMP types,
 * sport = htons(type) and dport = htons(code).
 */
struct xw_flow_key {
	__u8 src[16];   /* network byte order */
	__u8 dst[16];   /* network byte order */
	__be16 sport;   /* 0 for non-first fragments and other protocols */
	__be16 dport;
	__u32 ifindex;  /* interface the flow was seen on */
	__u8 proto;     /* IPPROTO_* */
	__u8 family;    /* 4 or 6 */
	__u16 pad;
};

/*
 * Flow value, one per flow shared by all CPUs: counters are atomic adds,
 * the TCP flags an atomic OR of the 32-bit word they share with
 * cached_verdict (so the table's memory does not grow with the CPU count).
 * cached_verdict and rules_gen are unused, kept so that pinned flow tables
 * keep their layout across a restart (see enum xw_cache).
 * Times are bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC as of the last tick
 * (milliseconds are all a flow listing needs, and it costs a third of an
 * established flow's time less than the precise clock); user space converts.
 */
struct xw_flow_value {
	struct xw_counter dir[XW_DIR__MAX]; /* indexed by enum xw_direction */
	__u64 first_seen_ns;
	__u64 last_seen_ns;
	__u8 tcp_flags[XW_DIR__MAX]; /* OR of TCP flag bytes seen per direction */
	__u8 cached_verdict;         /* unused: enum xw_cache */
	__u8 pad0;
	__u32 rules_gen;             /* unused */
};

/*
 * ---------------------------------------------------------------- policy
 * Rules on ports, protocols and flags, classified without walking them
 * (the bit-vector scheme of bpf-iptables, Miano et al.): every rule of a
 * hook has a position, its bit, in priority order; each field's lookup
 * yields the bitmap of the rules that field lets through, the bitmaps are
 * ANDed, and the lowest set bit is the first rule that matches. Tables are
 * double-buffered per hook: the control plane fills the buffer packets do
 * not read, then flips xw_pol_active[hook] with one write; a packet reads
 * that index once, so it is classified entirely by one buffer. Mirror:
 * src/policy/abi.ts (with the rest in src/datapath/abi.ts).
 *
 * Maps (all pinned by name):
 *   xw_pol_active   ARRAY[XW_POL_TABLES]  table -> __u32 buffer (0 or 1)
 *   xw_pol_meta     ARRAY[XW_POL_TABLES*2]  table*2+buf -> xw_pol_meta
 *   xw_pol_rules    ARRAY[XW_POL_TABLES*2*XW_POL_MAX_RULES]  -> xw_pol_rule
 *   xw_pol_bitmaps  HASH  xw_pol_bitmap_key -> xw_pol_bitmap
 *   xw_pol_addrs    LPM_TRIE[XW_POL_TABLES*2*XW_POL_MAX_ADDRS]  xw_pol_addr_key -> __u32
 *                   value of the prefix's bitmap key (prefixes with the same rules share one)
 *   xw_pol_ports    ARRAY  ((table*2+buf)*2+(dport))*16384 + port/4 -> xw_pol_port_slot
 *   xw_pol_port_first  ARRAY  (table*2+buf)*XW_POL_PORT_BITMAPS + dport interval
 *                   -> xw_pol_port_first (see XW_POL_F_PORT_FIRST)
 *   xw_block_meta   HASH  __u32 block rule_id -> xw_block_meta (ttl, dryRun)
 *   xw_pol_replies  LRU_HASH  xw_flow_key -> __u64 time of the last egress packet
 *   xw_pol_sync     ARRAY_OF_MAPS[1]: updating it waits for an RCU grace period,
 *                   after which no packet still reads the buffer flipped away from
 */
#define XW_POL_MAX_RULES 4096 /* per table */
/*
 * xw_pol_addrs entries per table and buffer (src and dst together): the
 * rules' prefixes plus the entries of the lists they reference
 * ("src": "list:NAME"), each distinct prefix once.
 */
#define XW_POL_MAX_ADDRS (1u << 18)
#define XW_POL_WORDS     (XW_POL_MAX_RULES / 64)
#define XW_POL_PORT_SLOTS (65536 / 4)
#define XW_POL_WILDCARD  0xffffffffu /* xw_pol_bitmap_key.value: rules that leave the field open */
#define XW_POL_REPLY_ENTRIES    (1u << 16) /* xw_pol_replies: flows this host opened */
#define XW_POL_REPLY_TIMEOUT_NS (300ULL * 1000000000ULL) /* a reply must follow egress traffic within this */
#define XW_POL_REPLY_REFRESH_NS (1000000000ULL) /* egress rewrites a flow's time at most this often */

/* Rule tables: one per hook, and the failsafe list as a table of its own. */
enum xw_pol_table {
	XW_POL_INGRESS  = 0,
	XW_POL_EGRESS   = 1,
	XW_POL_FAILSAFE = 2, /* ingress, before the blocks: any match passes */
	XW_POL_TABLES   = 3,
};

/* Fields a rule can constrain; bit (1 << field) of xw_pol_meta.fields. */
enum xw_pol_field {
	XW_FIELD_IFACE     = 0, /* value: ifindex */
	XW_FIELD_PROTO     = 1, /* value: IP protocol */
	XW_FIELD_SPORT     = 2, /* value: interval index from xw_pol_ports */
	XW_FIELD_DPORT     = 3, /* value: interval index from xw_pol_ports */
	XW_FIELD_TCP_FLAGS = 4, /* value: the TCP flag byte */
	XW_FIELD_ICMP_TYPE = 5,
	XW_FIELD_ICMP_CODE = 6,
	XW_FIELD_VLAN      = 7, /* value: innermost VLAN id */
	XW_FIELD_SRC       = 8, /* xw_pol_addrs */
	XW_FIELD_DST       = 9, /* xw_pol_addrs */
	XW_FIELD__MAX      = 10, /* as a bitmap key's field: the buffer's all-ones bitmap (value 0) */
};

/* What no rule matching does (xw_pol_meta.default_action). */
enum xw_pol_default {
	XW_POL_ACCEPT = 0,
	XW_POL_DROP   = 1, /* ingress: replies to flows this host opened still pass */
};

/* Bits of xw_pol_meta.flags. */
enum xw_pol_flags {
	XW_POL_F_REPLIES = 1u << 0, /* egress: record flows for ingress pass_reply */
	/*
	 * Every rule that can match a TCP or UDP packet constrains its
	 * destination port (port rules, a failsafe list of ports): a TCP/UDP
	 * packet whose port no rule's range covers (interval 0) matches none,
	 * decided by the port array alone, without a hash lookup.
	 */
	XW_POL_F_DPORT_ALL = 1u << 1,
	/*
	 * No rule constrains a field other than protocol and destination port
	 * (fields is a subset of both): the first rule a TCP or UDP packet with
	 * ports matches is a function of its protocol and port interval, which
	 * the control plane writes into xw_pol_port_first. The packet reads
	 * that element, no bitmap; if the rule has expired it is classified
	 * the long way, which skips expired rules.
	 */
	XW_POL_F_PORT_FIRST = 1u << 2,
};

/*
 * The failsafe quick check (xw_failsafe_quick, ARRAY[1], pinned with the
 * failsafe tables; a map made fresh reads zeros: "no quick answer, classify").
 * With ports_only set, a TCP or
 * UDP packet whose upper layer was parsed can match a failsafe entry only if
 * bit (destination port & 63) of dports is set: every entry of the active
 * failsafe table that can match TCP or UDP names destination ports (the
 * table's XW_POL_F_DPORT_ALL, or an empty table), and dports has the bit of
 * each port they cover. A packet about to drop then skips the failsafe
 * classification for one array element already in cache. The control plane
 * widens it (AND of ports_only, OR of dports) before flipping the failsafe
 * table and narrows it once no packet sees the old table, so it always
 * covers the table packets use.
 */
struct xw_failsafe_quick {
	__u64 dports;    /* bit (port & 63) of every destination port an entry covers */
	__u32 ports_only; /* 1: the rule above holds; 0: classify every packet */
	__u32 pad;
};

struct xw_pol_meta {
	__u32 words;          /* 64-bit words of the bitmaps in use: ceil(rules / 64) */
	__u32 fields;         /* bit per enum xw_pol_field that some rule constrains */
	__u8 default_action;  /* enum xw_pol_default */
	__u8 flags;           /* enum xw_pol_flags */
	__u16 pad;
	__u32 pad2;
};

/*
 * A rule by its position (bit). expires_ns: coarse CLOCK_MONOTONIC, 0 = never.
 * slot: the rule's index in the per-slot counters (see "rule slots" below);
 * 0: counted under rule_id in xw_rule_stats (failsafe entries, interface
 * defaults: rule_id 0, not counted).
 */
struct xw_pol_rule {
	__u32 rule_id; /* the control plane's id: events, rate-limit bucket keys */
	__u8 action;   /* enum xw_action: DENY, ALLOW or LOG */
	__u8 flags;    /* enum xw_rule_flags */
	__u16 slot;    /* < XW_POL_SLOTS */
	__u64 expires_ns;
};

/*
 * Under XW_POL_F_PORT_FIRST, per destination-port interval (0: a port no
 * rule's range covers, or a table without port constraints): a copy of
 * the first rule a TCP and a UDP packet of the interval matches (action 0:
 * none), so the packet reads one element, not the element and the rule.
 */
struct xw_pol_port_first {
	struct xw_pol_rule tcp;
	struct xw_pol_rule udp;
};

/*
 * ---------------------------------------------------------------- rule slots
 * Every policy rule the tables hold has a dense slot (1..XW_POL_SLOTS-1)
 * the control plane assigns, carried in its xw_pol_rule, so the counters
 * and rate parameters of the rule that decided are array elements, not
 * hash entries: the classifier already read the slot with the rule.
 * A slot stays with its rule while either hook's table holds the rule
 * (hits survive a change of priority or hook), is freed once a table flip
 * without the rule has synced (no packet counts into it any more), and is
 * zeroed in every map below before the control plane gives it to another
 * rule, so a new rule never inherits hits. Pinned: a restarted daemon
 * reads the slots back from the active tables and the counters stay.
 * Room for both hooks' full tables plus a full replacement of one.
 *
 * Maps (pinned by name):
 *   xw_slot_hits   PERCPU_ARRAY[XW_POL_SLOTS]  slot -> xw_counter (the rule's hits; a
 *                  ratelimit rule's admitted packets)
 *   xw_rl_rules    ARRAY[XW_POL_SLOTS]  slot -> xw_rl_conf (see "rate limits")
 *   xw_rl_stats    PERCPU_ARRAY[XW_POL_SLOTS]  slot -> xw_rl_stats (a ratelimit rule's
 *                  over-limit packets: its hits are these plus its xw_slot_hits)
 *   xw_rl_rule_buckets  ARRAY[XW_POL_SLOTS]  slot -> xw_rl_bucket (see "rate limits")
 * The exit counts each packet a rule decided once, in one of the two.
 */
#define XW_POL_SLOTS 16384

/*
 * The bitmaps of the two fields nearly every rule set constrains, protocol
 * and destination port, and the all-ones bitmap are elements of one array
 * instead of xw_pol_bitmaps entries (a hash probe each per classified
 * packet otherwise). Per table and buffer, XW_POL_BM_PER_BUF elements from
 * (table*2+buf)*XW_POL_BM_PER_BUF:
 *   + IP protocol (0..255)   its rules and the wildcard's, every protocol written
 *   + XW_POL_BM_ALL          all-ones over the buffer's rules (always written)
 *   + XW_POL_BM_DPORT + interval  (interval 0, no rule's range: the wildcard's)
 * The protocol and port parts are written for a buffer only while its
 * table constrains the field (its bit in xw_pol_meta.fields), so only then
 * read. n port ranges make at most 2n - 1 intervals.
 *   xw_pol_bm  ARRAY[XW_POL_TABLES*2*XW_POL_BM_PER_BUF] -> xw_pol_bitmap
 */
#define XW_POL_PORT_BITMAPS (2 * XW_POL_MAX_RULES)
#define XW_POL_BM_ALL       256
#define XW_POL_BM_DPORT     257
#define XW_POL_BM_PER_BUF   (XW_POL_BM_DPORT + XW_POL_PORT_BITMAPS)

struct xw_pol_bitmap_key {
	__u8 table;  /* enum xw_pol_table */
	__u8 buf;    /* 0 or 1 */
	__u8 field;  /* enum xw_pol_field */
	__u8 pad;
	__u32 value; /* or XW_POL_WILDCARD */
};

struct xw_pol_bitmap {
	__u64 summary;             /* bit w: words[w] is not zero (only those words are visited) */
	__u64 words[XW_POL_WORDS]; /* bit i of word w: the rule at position w * 64 + i */
};

/*
 * Address prefixes. prefixlen counts the 32 tag bits (table, buf, field,
 * family) plus the prefix; an IPv4 address fills addr[0..3].
 */
struct xw_pol_addr_key {
	__u32 prefixlen;
	__u8 table;
	__u8 buf;
	__u8 field;  /* XW_FIELD_SRC or XW_FIELD_DST */
	__u8 family; /* 4 or 6 */
	__u8 addr[16];
};

/*
 * Blocks with a ttl or dryRun carry this in xw_block_meta (HASH, rule_id ->
 * xw_block_meta), read only when a block matched: an expired block no
 * longer matches (the packet goes on to the rules), a dry-run one passes
 * under would_drop. Blocks without either have no entry.
 */
#define XW_BLOCK_META_ENTRIES (1u << 16)

struct xw_block_meta {
	__u64 expires_ns; /* coarse CLOCK_MONOTONIC, 0 = never */
	__u8 flags;       /* enum xw_rule_flags */
	__u8 pad[7];
};

/* Four consecutive ports' interval indexes (0: no interval, the wildcard). */
struct xw_pol_port_slot {
	__u16 interval[4];
};

/*
 * ---------------------------------------------------------------- rate limits
 * A policy rule with action XW_ACTION_RATELIMIT admits a packet when its
 * token bucket holds enough, and drops it (XW_REASON_RATELIMIT) otherwise;
 * an admitted packet passes as the rule's pass (XW_REASON_PASS_RULE), a
 * dry-run rule's over-limit packet passes as XW_REASON_WOULD_RATELIMIT.
 *
 * Token buckets, integer arithmetic only: tokens are scaled by
 * XW_RL_SCALE, so a refill of elapsed_ns * rate is exact with no division
 * (a packet costs XW_RL_SCALE packet tokens and len * 8 * XW_RL_SCALE bit
 * tokens; rate is per second, elapsed in ns). A bucket is full at *_cap;
 * an idle time beyond *_fill_ns refills no more than a full bucket (this
 * also keeps elapsed * rate from overflowing). A packet must fit every
 * dimension the rule sets (pps, bps); a bucket starts full. The clock is
 * CLOCK_MONOTONIC: bpf_ktime_get_coarse_ns() (as of the last tick, a few
 * ms at most behind) for a rule whose fill times (pkt_fill_ns, bit_fill_ns
 * of the dimensions it sets) are all at least XW_RL_COARSE_FILL_NS, so a
 * tick's refill is a small share of the bucket; bpf_ktime_get_ns() for a
 * shallower one. Either way refills add up exactly over time. In the test build
 * (-DXW_TEST_CLOCK) the u64 in map xw_test_clock, so BPF_PROG_TEST_RUN
 * tests own time.
 *
 * Several CPUs may update one bucket: the CPU whose compare-and-swap moves
 * last_ns forward owns the elapsed interval and adds its refill; tokens
 * change by compare-and-swap (clamped to the cap), with a bounded number
 * of tries before falling back to plain atomic adds (then unclamped until
 * the next update). So no refill is counted twice and no token is taken
 * twice. Mirror of the arithmetic: src/ratelimit/reference.ts.
 *
 * Buckets: per source address (per = source), per source prefix
 * (source-prefix: /prefix_v4, /prefix_v6), or one per rule (rule). Source
 * buckets are preallocated (not an LRU: an LRU would let a spoofed flood
 * evict heavy sources' buckets, which then return full), one table per
 * family:
 *
 *   IPv4: xw_rl_buckets_v4, an array of capacity.rateBuckets slots, each a
 *   key (xw_rl_key_v4 read as a u64: rule id, then the address masked to
 *   the rule's prefix_v4, or /32; 0: free) and its bucket in one 64-byte
 *   cache line (BPF_F_MMAPABLE: the values start page-aligned). A key's
 *   slots are the XW_RL_PROBES consecutive ones (wrapping) from its first
 *   (XW_RL_SLOT_HASH below); its bucket is in the first of them that
 *   holds the key. A key in none of them claims the first free one with a
 *   compare-and-swap on the key and writes the bucket full. A drop of a
 *   source with a bucket reads one cache line, where a hash lookup read
 *   three (bucket head, element header, value) and hashed the key.
 *   IPv6: xw_rl_buckets, a preallocated hash (xw_rl_key) of
 *   capacity.rateBucketsV6 entries.
 *
 * A source without a bucket whose table has no room for it (IPv4: its
 * XW_RL_PROBES slots hold other keys; IPv6: the hash is full) is charged
 * to its rule's shared bucket in xw_rl_rule_buckets at the rule's slot
 * (the overflow bucket, with the rule's rate): every such source together
 * gets one source's rate until slots are freed. The control plane frees
 * only buckets idle for at least max(fill time, the sweep's idle age):
 * such a bucket is full again, so freeing it (zeroing the slot, deleting
 * the hash entry) changes nothing a packet sees. A rule with per = rule
 * uses its shared bucket only. The control plane writes a rule's shared
 * bucket full with its conf (slot zeroed: last_ns 0); it is zeroed with the
 * slot. A shared bucket's admitted and dropped stay 0: the rule's counters
 * (xw_rl_stats) already count them, and a flood's drops of a per-rule
 * bucket then only read its cache line, which every CPU shares.
 *
 * Races of a claim, all bounded to a packet or two, none a reset of a
 * source being limited: a packet of the source on another CPU between the
 * compare-and-swap and the bucket's writes reads the freed slot's bucket
 * (zeroed by the sweep: a full one); two CPUs that scanned before a sweep
 * freed an earlier slot may claim two slots for one new source (each a
 * full bucket; later packets use the first, the other idles until swept).
 *
 * A source bucket's `dropped` doubles as the ban window's count: the
 * window's drops are dropped - window_base (window_base: `dropped` when the
 * window began). It is a plain read and write, not an atomic add: the lock
 * was a third of a flood's drop. Drops of one source on two CPUs at the
 * same moment may count once, so a ban and GET /v1/ratelimits/top see a
 * lower bound of a source's drops (a ban can come a few drops late, and
 * two CPUs may both report the crossing: the second ban of the source
 * only renews its block). The rule's drops (xw_rl_stats, per CPU) and every
 * token decision stay exact.
 *
 * Maps (pinned by name):
 *   xw_rl_rules    ARRAY[XW_POL_SLOTS]  rule slot -> xw_rl_conf (written before the rule tables flip)
 *   xw_rl_rule_buckets  ARRAY[XW_POL_SLOTS]  rule slot -> xw_rl_bucket (per-rule or overflow bucket)
 *   xw_rl_buckets_v4    ARRAY  slot -> xw_rl_slot_v4, IPv4 sources (capacity.rateBuckets slots)
 *   xw_rl_buckets       HASH  xw_rl_key -> xw_rl_bucket, IPv6 sources (capacity.rateBucketsV6)
 *   xw_rl_stats    PERCPU_ARRAY[XW_POL_SLOTS]  rule slot -> xw_rl_stats (over-limit packets; admitted: xw_slot_hits)
 *   xw_rl_reports  RINGBUF  xw_rl_report: sources that crossed a rule's ban threshold
 *   xw_rl_report_budget  ARRAY[1] -> xw_rl_bucket: at most XW_RL_REPORT_RATE reports/s
 */
#define XW_RL_SCALE            1000000000ULL /* tokens per packet or bit */
#define XW_DEFAULT_RL_BUCKETS  (1u << 17) /* IPv4 source bucket slots: twice the sources expected at once */
#define XW_DEFAULT_RL_BUCKETS_V6 (1u << 14) /* IPv6 source buckets (a hash: 2.3 MiB, within the defaults' memory) */
#define XW_RL_CAS_TRIES        4
#define XW_RL_PROBES           8 /* slots an IPv4 source's bucket may take */
/*
 * An IPv4 key's first slot: ((key * XW_RL_SLOT_HASH mod 2^64) >> 32) *
 * slots >> 32, the high half of a Fibonacci hash scaled to the table (no
 * power of two needed).
 */
#define XW_RL_SLOT_HASH        0x9e3779b97f4a7c15ULL
#define XW_RL_REPORT_RATE      1000 /* ban reports per second, all rules */
#define XW_RL_REPORT_RING      (1u << 16) /* bytes */
#define XW_RL_COARSE_FILL_NS   50000000ULL /* 50 ms: see the clock above */

enum xw_rl_per {
	XW_RL_PER_SOURCE = 0,
	XW_RL_PER_PREFIX = 1,
	XW_RL_PER_RULE   = 2,
};

struct xw_rl_conf {
	__u64 pps;          /* packets per second; 0: no packet limit */
	__u64 bps;          /* bits per second; 0: no bit limit */
	__u64 pkt_cap;      /* packet bucket depth (burst) * XW_RL_SCALE */
	__u64 bit_cap;      /* bit bucket depth * XW_RL_SCALE */
	__u64 pkt_fill_ns;  /* ceil(pkt_cap / pps): empty to full */
	__u64 bit_fill_ns;  /* ceil(bit_cap / bps) */
	__u64 ban_within_ns; /* drop-count window (ban's within, else 1 s) */
	__u32 ban_after;    /* drops within the window that report the source; 0: no ban */
	__u8 per;           /* enum xw_rl_per */
	__u8 prefix_v4;     /* source-prefix lengths */
	__u8 prefix_v6;
	__u8 pad;
	__u32 slots_v4;     /* xw_rl_buckets_v4's slots (capacity.rateBuckets), the same in every conf */
	__u32 pad2;
};

/*
 * Bucket key of an IPv6 source (xw_rl_buckets) and of every ban report:
 * the rule and the source (masked to prefixlen).
 */
struct xw_rl_key {
	__u32 rule_id;
	__u8 family;    /* 4 or 6 */
	__u8 prefixlen; /* bits of addr kept */
	__u16 pad;
	__u8 addr[16];  /* network byte order; IPv4 in addr[0..3], the rest 0 */
};

/* Bucket key of an IPv4 source (xw_rl_slot_v4.key's bytes); its prefix length is the rule's. */
struct xw_rl_key_v4 {
	__u32 rule_id;
	__be32 addr;    /* network byte order, masked to the rule's prefix_v4 (per source: /32) */
};

/* One bucket, shared by all CPUs (atomic updates). */
struct xw_rl_bucket {
	__s64 pkt_tokens;   /* packets * XW_RL_SCALE */
	__s64 bit_tokens;   /* bits * XW_RL_SCALE */
	__u64 last_ns;      /* clock of the last refill */
	__u64 admitted;     /* packets admitted (source buckets only) */
	__u64 dropped;      /* packets over the limit, dry-run: would have been (source buckets only) */
	__u64 window_ns;    /* ban: start of the current window */
	__u64 window_base;  /* ban: `dropped` when the window began (its drops: dropped - window_base) */
};

/* A slot of xw_rl_buckets_v4: an IPv4 source's key and bucket, one cache line. */
struct xw_rl_slot_v4 {
	__u64 key;          /* struct xw_rl_key_v4's bytes (rule_id != 0); 0: free */
	struct xw_rl_bucket bucket;
};

/* A ratelimit rule's over-limit packets; its admitted ones are its hits in xw_slot_hits. */
struct xw_rl_stats {
	struct xw_counter dropped;
};

/* A source crossed ban_after drops within ban_within_ns (one report per window). */
struct xw_rl_report {
	struct xw_rl_key key;
	__u64 time_ns;  /* the limiter's clock */
	__u32 drops;    /* drops in the window */
	__u32 pad;
};

/*
 * ---------------------------------------------------------------- events
 * Sampled packets, for "what is dropped and why" (lib/events.h). While
 * XW_FEATURE_EVENTS is set, every packet's exit counts down its reason's
 * per-CPU sampler (1 in xw_event_cfg.sample[reason], 0 = never); a sampled
 * packet then takes a token from one shared bucket (rate_per_sec, burst)
 * and goes to the xw_events ring buffer as a struct xw_event. Sampled,
 * capped and ring-full events are counted in xw_event_stats. None of these
 * maps is pinned: the daemon writes xw_event_cfg at every start, and a
 * restart losing the counters and the ring is harmless. Mirror:
 * src/events/abi.ts.
 *
 * Maps:
 *   xw_events       RINGBUF (XW_EVENTS_RING_BYTES) of struct xw_event
 *   xw_event_cfg    ARRAY[1]  __u32 0 -> xw_event_cfg
 *   xw_event_stats  PERCPU_ARRAY[XW_EVSTAT__MAX]  enum xw_event_stat -> __u64
 */
#define XW_EVENT_SNAP_LEN    128       /* bytes of the frame an event carries */
#define XW_EVENTS_RING_BYTES (1u << 20) /* about 5000 events */

enum xw_event_stat {
	XW_EVSTAT_SAMPLED   = 0, /* written to the ring */
	XW_EVSTAT_LOST_CAP  = 1, /* sampled, but the bucket was empty */
	XW_EVSTAT_LOST_RING = 2, /* sampled, but the ring was full */
	XW_EVSTAT__MAX      = 3,
};

/* Bits of xw_event.flags. */
enum xw_event_flags {
	XW_EVENT_F_L4   = 1u << 0, /* sport, dport, tcp_flags were parsed */
	XW_EVENT_F_VLAN = 1u << 1, /* vlan holds the innermost VLAN id */
};

struct xw_event_cfg {
	__u32 sample[XW_STATS_REASONS]; /* by enum xw_reason: 1 in N packets, 0 = none */
	__u64 rate_per_sec; /* bucket refill, events per second; 0 = no cap */
	__u64 burst;        /* bucket depth, events */
	__u64 test_now_ns;  /* tests only: nonzero replaces the bucket's clock */
};

struct xw_event {
	__u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;
	__u32 rule_id;    /* the rule or block that decided, 0 if none */
	__u32 len;        /* frame bytes as the hook saw them */
	__u16 reason;     /* enum xw_reason */
	__u8 verdict;     /* enum xw_verdict */
	__u8 direction;   /* enum xw_direction */
	__u8 family;      /* 0 (not parsed as IP), 4 or 6 */
	__u8 proto;       /* IPPROTO_* */
	__u8 tcp_flags;
	__u8 flags;       /* enum xw_event_flags */
	__u16 vlan;
	__be16 sport;     /* ICMP: the echo identifier, else htons(type) */
	__be16 dport;     /* ICMP: the echo identifier, else htons(code) */
	__u16 snap_len;   /* bytes of data[] that hold the frame's start */
	__u8 saddr[16];   /* network byte order, IPv4 as IPv4-mapped IPv6 */
	__u8 daddr[16];
	__u8 data[XW_EVENT_SNAP_LEN];
	__u32 pad;
};

/*
 * ---------------------------------------------------------------- IPv6 prefixes by length
 * IPv6 network prefixes (not /128: those are in the host hashes) in
 * exact-match hashes per direction, so a lookup is a probe or two instead
 * of a trie walk (lib/cidr.h, xw_lookup_v6):
 *   - the /64 of the address (if some prefix of /64../127 exists), in
 *     xw_*_v6_net keyed by the /64 alone: its entry holds the /64 prefix's
 *     own rule and, for up to XW_V6_PROBES prefixes /65../127 inside it,
 *     those prefixes themselves (sub[], longest first: compared in place,
 *     no further probe). A /64 with more prefixes lists their lengths
 *     instead (XW_V6_LISTED, longest first: one probe each into
 *     xw_*_v6_len); with more than XW_V6_PROBES lengths it asks the trie
 *     (XW_V6_DEEPER);
 *   - then the lengths /0../63 present (xw_v6_lengths.shorter), longest
 *     first, one probe each into xw_*_v6_len (keyed by xw_lpm_v6_key, the
 *     address cut to prefixlen); more than XW_V6_PROBES such lengths ask
 *     the trie (XW_V6_SHORT_TRIE).
 * The LPM tries (xw_src_v6/xw_dst_v6) keep every prefix. The first match
 * found is the longest, an allow included.
 *
 * The control plane (src/datapath/v6-lengths.ts) writes prefix entries,
 * then the /64 entries, then the filter bits, then xw_v6_lengths; removals
 * in the same order. A listed length or set bit without its entry is a
 * miss, and an entry is replaced whole, so every packet sees the old or the
 * new answer. Until XW_V6_FLAT is set (a new load, before the tables are
 * filled) the trie answers alone. Not pinned: rebuilt on every start, like
 * the DIR-24 tables.
 *
 * A filter per direction says which host routes and /64 entries may exist,
 * so an address that has neither (most passing traffic) skips those hash
 * probes for one array read each: bit xw_v6_hash_host(address) is set while
 * the host hash may hold the address, bit xw_v6_hash_net(its /64) while the
 * /64 entry may exist (set after the entry is written, cleared after it is
 * deleted; a set bit without an entry is only a probe). Read only while
 * XW_V6_FLAT is set. Hashes of the address's 32-bit words a, b, c, d (host
 * order of the big-endian words), in u32 arithmetic, the top
 * XW_V6_FILTER_BITS bits kept:
 *   net:  (a ^ b * 0x85ebca6b) * 0x9e3779b1
 *   host: (a ^ (b ^ (c ^ d * 0xc2b2ae35) * 0x27d4eb2f) * 0x85ebca6b) * 0x9e3779b1
 * The same filter holds IPv4 host routes (/32) with XW_FEATURE_V4_HOST_FILTER,
 * address a (host order): (a ^ a >> 16) * 0x7feb352d. One
 * filter for both families: no memory of its own, and IPv4 and IPv6 bits
 * share its 4 Mi bits per direction.
 *
 * Maps:
 *   xw_src_v6_len, xw_dst_v6_len  HASH  xw_lpm_v6_key -> xw_rule_value (capacity.cidrV6)
 *   xw_src_v6_net, xw_dst_v6_net  HASH  __be64 /64 -> xw_v6_net (capacity.cidrV6)
 *   xw_v6_lengths                 ARRAY[2]  0 source, 1 destination -> xw_v6_lengths
 *   xw_v6_filter                  ARRAY[2 x XW_V6_FILTER_WORDS]  side * words + bit / 64 -> __u64
 */
#define XW_V6_PROBES 8 /* prefixes in place or lengths listed per step; more ask the trie */
#define XW_V6_FILTER_BITS  22 /* 4 Mi bits (512 KiB) per direction */
#define XW_V6_FILTER_WORDS (1u << (XW_V6_FILTER_BITS - 6))

/* Bits of xw_v6_net.flags. */
enum xw_v6_net_flags {
	XW_V6_DEEPER = 1u << 0, /* more than XW_V6_PROBES lengths inside: ask the trie */
	XW_V6_LISTED = 1u << 1, /* more than XW_V6_PROBES prefixes inside: longer[] lists their lengths */
};

/* A prefix /65../127 kept in its /64's entry. */
struct xw_v6_sub {
	__u64 low;      /* the address's last 64 bits cut to len, host order */
	__u32 rule_id;
	__u8 action;    /* enum xw_action */
	__u8 len;       /* 65..127 */
	__u16 pad;
};

struct xw_v6_net {
	struct xw_rule_value rule;   /* the /64 prefix's own rule; rule_id 0: none */
	__u32 flags;                 /* enum xw_v6_net_flags */
	__u32 count;                 /* sub[] in use (neither flag set) */
	__u8 longer[XW_V6_PROBES];   /* XW_V6_LISTED: lengths 65..127 inside, longest first, 0 ends */
	struct xw_v6_sub sub[XW_V6_PROBES]; /* the prefixes inside, longest first */
};

/* Bits of xw_v6_lengths.flags. */
enum xw_v6_flags {
	XW_V6_FLAT       = 1u << 0, /* the hashes hold every prefix: use them (else only the trie) */
	XW_V6_HAS64      = 1u << 1, /* some prefix of /64../127 exists: probe the /64 */
	XW_V6_SHORT_TRIE = 1u << 2, /* more than XW_V6_PROBES lengths below /64: the trie decides those */
};

struct xw_v6_lengths {
	__u8 shorter[XW_V6_PROBES]; /* lengths 0..63 present, longest first */
	__u32 count;                /* how many of shorter[] are in use */
	__u32 flags;                /* enum xw_v6_flags */
};

#endif /* XDPWALL_ABI_H */
