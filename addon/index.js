// Entry point of @xdpwall/addon: loads the native module and exports what
// index.d.ts declares. BpfError is defined here, in JavaScript, and handed to
// the native side so every native failure is a real BpfError instance.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const native = require('./build/Release/xdpwall.node');

export class BpfError extends Error {
  /**
   * @param {string} message
   * @param {number} errno positive errno value, e.g. 7
   * @param {string} code errno name, e.g. "E2BIG"
   * @param {string} op the failed libbpf call or system call
   */
  constructor(message, errno, code, op) {
    super(message);
    this.errno = errno;
    this.code = code;
    this.op = op;
  }
}
Object.defineProperty(BpfError.prototype, 'name', { value: 'BpfError', writable: true, configurable: true });

native.setErrorClass(BpfError);

export const {
  BpfObject,
  BpfProgram,
  BpfMap,
  BpfRingBuffer,
  BPF_ANY,
  BPF_NOEXIST,
  BPF_EXIST,
  BPF_F_TEST_RUN_ON_CPU,
  BPF_F_TEST_XDP_LIVE_FRAMES,
  numPossibleCpus,
  ifindex,
  ensureBpffs,
  xdpAttach,
  xdpDetach,
  xdpQuery,
  tcAttach,
  tcDetach,
  tcQuery,
  linkCreate,
  linkUpdate,
  linkDetach,
  linkInfo,
  linkList,
  linkFdById,
  objPin,
  objGet,
  progInfo,
  flockExclusive,
} = native;
