// Hand-written declarations of the native addon (addon/src/*.cc).
// A small, general libbpf wrapper: no firewall logic lives here.
//
// Interfaces are named "IFNAME" (this network namespace) or "NETNS/IFNAME"
// (a namespace under /run/netns); the addon enters NETNS on the calling
// thread for the netlink work and always returns to the original namespace.

/**
 * Every native failure. `code` is the errno name ("E2BIG", "ENOENT", ...).
 * The message reads "<op> (<context>): <strerror> [<code>]", followed by
 * libbpf's log lines when it logged any (e.g. the verifier log of a failed
 * load, the kernel's netlink message of a failed attach).
 * Wrong argument types throw TypeError/RangeError instead.
 */
export declare class BpfError extends Error {
  readonly name: 'BpfError';
  /** Positive errno value, e.g. 7 for E2BIG. */
  readonly errno: number;
  readonly code: string;
  /** The operation that failed, e.g. "bpf_map_update_elem", "bpf_xdp_attach". */
  readonly op: string;
  constructor(message: string, errno: number, code: string, op: string);
}

export type XdpMode = 'native' | 'generic';
export type TcDirection = 'ingress' | 'egress';

export interface OpenOptions {
  /**
   * bpffs directory for maps: each map the object marks LIBBPF_PIN_BY_NAME is
   * pinned at `${pinRoot}/${mapName}` on load, and an existing compatible pin
   * there is reused instead of creating a new map (libbpf's pin_root_path
   * semantics); unmarked maps stay private. Without pinRoot nothing is pinned,
   * even marked maps.
   */
  pinRoot?: string;
}

export declare class BpfObject {
  /** Parses the ELF file; nothing is loaded into the kernel yet. */
  static open(path: string, options?: OpenOptions): BpfObject;
  /** Before load(): resize a map (e.g. an LPM trie from configuration). */
  setMapMaxEntries(mapName: string, maxEntries: number): void;
  /** Verifies and loads all programs, creating or reusing (pinned) maps. */
  load(): Promise<void>;
  readonly loaded: boolean;
  programNames(): string[];
  mapNames(): string[];
  /** Throws BpfError (code "ENOENT") for an unknown name. */
  program(name: string): BpfProgram;
  map(name: string): BpfMap;
  /**
   * A global variable's initial bytes (e.g. a `const` in .rodata), found
   * through the object's BTF; works before load(). ENOENT if unknown.
   */
  variable(name: string): Buffer;
  /** Frees the object and its fds. Idempotent; pins stay in bpffs. */
  close(): void;
}

export interface TestRunOptions {
  /** Packet bytes (at least 14 for XDP and TC). */
  data: Buffer;
  /** Run this many times; durationNs is the mean per run. Default 1. */
  repeat?: number;
  /** Optional context (struct xdp_md / struct __sk_buff bytes). */
  ctxIn?: Buffer;
  /** BPF_F_TEST_* flags, e.g. BPF_F_TEST_XDP_LIVE_FRAMES. */
  flags?: number;
  /** Room for data_out; default data.length + 256. 0 skips data_out. */
  dataSizeOut?: number;
  /** CPU to run on for programs that support it (flags must include BPF_F_TEST_RUN_ON_CPU). */
  cpu?: number;
  /** Frames per batch with BPF_F_TEST_XDP_LIVE_FRAMES (kernel default 64). */
  batchSize?: number;
}

export interface TestRunResult {
  retval: number;
  /** Mean duration of one run, in nanoseconds, as the kernel reports it. */
  durationNs: number;
  dataOut: Buffer;
}

export declare class BpfProgram {
  readonly name: string;
  /** -1 until the object is loaded, and after close(). */
  readonly fd: number;
  /** Kernel program id (as xdpQuery/tcQuery report it); 0 when not loaded. */
  readonly id: number;
  /** libbpf program type name, e.g. "xdp", "sched_cls". */
  readonly type: string;
  /** BPF_PROG_TEST_RUN on a worker thread. */
  testRun(options: TestRunOptions): Promise<TestRunResult>;
  /** Same on the calling thread, for tight test loops. */
  testRunSync(options: TestRunOptions): TestRunResult;
  pin(path: string): void;
  unpin(path: string): void;
}

export interface BatchLookupResult {
  /** count * keySize bytes. */
  keys: Buffer;
  /** count * valueStride bytes (per-CPU maps: one value per possible CPU). */
  values: Buffer;
  count: number;
}

export interface BatchLookupPage extends BatchLookupResult {
  /** Where the next page starts (opaque bytes), or null when this was the last. */
  cursor: Buffer | null;
}

export declare class BpfMap {
  readonly name: string;
  /** -1 until the object is loaded, and after close(). */
  readonly fd: number;
  /** Kernel map id (equal across objects sharing a pinned map); 0 when not loaded. */
  readonly id: number;
  /** libbpf map type name, e.g. "lpm_trie", "percpu_hash", "lru_percpu_hash". */
  readonly type: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  /** BPF_F_* creation flags, e.g. BPF_F_NO_PREALLOC (1). */
  readonly mapFlags: number;
  readonly perCpu: boolean;
  /**
   * Bytes of one element's value as user space reads and writes it: valueSize,
   * or round_up(valueSize, 8) * numPossibleCpus() for per-CPU maps.
   */
  readonly valueStride: number;

  /** The value (valueStride bytes) or null when the key is absent. */
  lookup(key: Buffer): Buffer | null;
  /** flags: BPF_ANY (0), BPF_NOEXIST (1), BPF_EXIST (2). value is valueStride bytes. */
  update(key: Buffer, value: Buffer, flags?: number): void;
  /** true if deleted, false if absent. */
  delete(key: Buffer): boolean;
  /** The next key after `key` (first key when null), or null at the end. */
  nextKey(key: Buffer | null): Buffer | null;
  /**
   * bpf_map_update_batch over `count` packed keys and values
   * (count * keySize, count * valueStride). Resolves to the number updated.
   */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags?: number): Promise<number>;
  /** bpf_map_delete_batch over packed keys; resolves to the number deleted. */
  deleteBatch(keys: Buffer, count: number): Promise<number>;
  /**
   * Every element, read with bpf_map_lookup_batch (falling back to
   * get_next_key + lookup for map types without batch support, e.g. LPM on
   * older kernels). batchSize elements per system call, default 4096.
   */
  lookupAll(batchSize?: number): Promise<BatchLookupResult>;
  /**
   * One page of a walk: at most maxCount elements (default 4096; more only
   * when one hash bucket holds more) from where `cursor` points (the start
   * when null), with the cursor of the next page, null after the last. One
   * bpf_map_lookup_batch call on a worker thread, for map types with batch
   * support (hash, per-CPU, LRU, LPM). The walk is not a snapshot: elements
   * added or deleted meanwhile may or may not be seen.
   */
  lookupBatch(cursor: Buffer | null, maxCount?: number): Promise<BatchLookupPage>;
  pin(path: string): void;
  unpin(path: string): void;
}

/**
 * Reads a BPF_MAP_TYPE_RINGBUF map: `new BpfRingBuffer(map.fd)` (the fd is
 * duplicated, so the reader outlives neither nor needs the map object).
 * Non-blocking: poll it on a timer.
 */
export declare class BpfRingBuffer {
  constructor(mapFd: number);
  /** Copies of the records available now, oldest first, at most maxRecords (default 4096). */
  consume(maxRecords?: number): Buffer[];
  /** Idempotent. consume() after close() throws BpfError EBADF. */
  close(): void;
  readonly closed: boolean;
}

export interface XdpAttachResult {
  ifindex: number;
  mode: XdpMode;
}

export interface XdpState {
  ifindex: number;
  /** 0 when nothing is attached. */
  progId: number;
  mode: XdpMode | 'none' | 'offload' | 'multi';
}

export interface TcAttachOptions {
  /** Filter handle and priority; default 1 and 1. */
  handle?: number;
  priority?: number;
}

export interface TcState {
  ifindex: number;
  /** 0 when no filter with this handle/priority is attached. */
  progId: number;
}

export declare const BPF_ANY: 0;
export declare const BPF_NOEXIST: 1;
export declare const BPF_EXIST: 2;
export declare const BPF_F_TEST_RUN_ON_CPU: number;
export declare const BPF_F_TEST_XDP_LIVE_FRAMES: number;

/** libbpf_num_possible_cpus(). */
export declare function numPossibleCpus(): number;
/** Resolves "[NETNS/]IFNAME" to its ifindex inside its namespace. */
export declare function ifindex(iface: string): number;
/** Mounts bpffs at `path` unless it is already a bpffs mount; true if it mounted. */
export declare function ensureBpffs(path: string): boolean;

/** bpf_xdp_attach, replacing whatever XDP program is attached in that mode. */
export declare function xdpAttach(iface: string, progFd: number, mode: XdpMode): XdpAttachResult;
export interface XdpDetachOptions {
  /**
   * Detach only if this program is the one attached (XDP_FLAGS_REPLACE);
   * otherwise the kernel refuses with EEXIST and nothing changes.
   */
  expectedProgId?: number;
}

/** Detaches XDP in `mode` (both modes when omitted). No error if nothing is attached. */
export declare function xdpDetach(iface: string, mode?: XdpMode, options?: XdpDetachOptions): void;
export declare function xdpQuery(iface: string): XdpState;

/** Creates the clsact qdisc if needed and attaches a direct-action filter. */
export declare function tcAttach(iface: string, progFd: number, direction: TcDirection, options?: TcAttachOptions): TcState;
/** Removes the filter; no error if it is absent. Leaves the clsact qdisc. */
export declare function tcDetach(iface: string, direction: TcDirection, options?: TcAttachOptions): void;
export declare function tcQuery(iface: string, direction: TcDirection, options?: TcAttachOptions): TcState;

/** Where a bpf_link attaches: the XDP hook, or the tcx chain of one direction (kernel 6.6+). */
export type LinkHook = 'xdp' | 'tcx_ingress' | 'tcx_egress';

export interface LinkCreateOptions {
  /** Required for 'xdp'. */
  xdpMode?: XdpMode;
}

export interface LinkCreateResult {
  /** The link's file descriptor: the caller closes it (fs.closeSync) once pinned or detached. */
  fd: number;
  ifindex: number;
}

export interface LinkInfo {
  id: number;
  /** libbpf link type name: "xdp", "tcx", "cgroup", ... */
  type: string;
  progId: number;
  /** For xdp and tcx links; 0 when the device has gone (the link is defunct). */
  ifindex: number;
  /** BPF_XDP (37), BPF_TCX_INGRESS (46) or BPF_TCX_EGRESS (47); 0 for other links. */
  attachType: number;
}

export interface ProgInfo {
  id: number;
  /** The kernel's (truncated, 15 bytes) program name. */
  name: string;
  /** libbpf program type name, e.g. "xdp", "sched_cls". */
  type: string;
}

/**
 * bpf_link_create: attaches the program to the interface through a link.
 * An XDP link fails with EBUSY while any XDP program is attached in any way;
 * tcx links append to the chain (other programs stay).
 */
export declare function linkCreate(iface: string, progFd: number, hook: LinkHook, options?: LinkCreateOptions): LinkCreateResult;

export interface LinkUpdateOptions {
  /** Swap only if the link still runs this program (BPF_F_REPLACE); else EPERM. */
  expectedProgId?: number;
}

/** bpf_link_update: replaces the link's program atomically. */
export declare function linkUpdate(linkFd: number, progFd: number, options?: LinkUpdateOptions): void;
/** bpf_link_detach: the hook stops running the program; the link turns defunct. */
export declare function linkDetach(linkFd: number): void;
export declare function linkInfo(linkFd: number): LinkInfo;
/** Every bpf_link in the system. */
export declare function linkList(): LinkInfo[];
/** A new fd for the link with this id (the caller closes it). */
export declare function linkFdById(id: number): number;
export declare function progInfo(id: number): ProgInfo;

/** bpf_obj_pin: pins a map, program or link fd at a bpffs path. */
export declare function objPin(fd: number, path: string): void;
/** bpf_obj_get: a new fd for the pinned object (the caller closes it); ENOENT if no pin. */
export declare function objGet(path: string): number;

/**
 * flock(fd, LOCK_EX | LOCK_NB): true if taken, false if another open file
 * description holds it. The lock goes with the fd (and the process).
 */
export declare function flockExclusive(fd: number): boolean;
