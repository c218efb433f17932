// Traffic generator, run by the veth suite as a child process inside the
// sender namespace (nsenter --net=...), pinned to the benchmark CPU.
//
// BPF_PROG_TEST_RUN in BPF_F_TEST_XDP_LIVE_FRAMES mode runs bench_gen_tx
// (bench/bpf/gen_tx.bpf.c) over a page pool of copies of the template frame;
// each XDP_TX becomes a transmit out of ctx.ingress_ifindex, which must be an
// interface of this process's network namespace: hence the child process.
//
// Protocol: one JSON line in, one JSON line out.
//   in  {"setup": {objectPath, ifname, sources: [u32 ...], template: hex}}
//   out {"ready": true, "ifindex": N}      (again at any time: new sources)
//   in  {"repeat": N}      -> out {"sent": N, "wallNs": T}
//   in  {"quit": true}     -> exits
// Every request is bounded by its repeat count; the parent also kills this
// process (SIGTERM interrupts a running test run with EINTR) past a deadline.
import { createInterface } from 'node:readline';
import { BpfObject, BPF_F_TEST_XDP_LIVE_FRAMES, ifindex } from '@xdpwall/addon';

export interface GeneratorSetup {
  objectPath: string;
  ifname: string;
  /** IPv4 source addresses as unsigned 32-bit numbers; a power-of-two count. */
  sources: number[];
  /** The frame to send, hex. */
  template: string;
}

export type GeneratorRequest = { setup: GeneratorSetup } | { repeat: number } | { quit: true };
export type GeneratorReply = { ready: true; ifindex: number } | { sent: number; wallNs: number } | { error: string };

/** Largest repeat the parent may ask for in one call. */
export const GENERATOR_MAX_REPEAT = 1 << 27;

/** struct xdp_md as BPF_PROG_TEST_RUN takes it: data_end = frame length, ingress_ifindex at 12. */
function xdpMd(frameLength: number, ingressIfindex: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frameLength, 4); // data_end
  ctx.writeUInt32LE(ingressIfindex, 12);
  ctx.writeUInt32LE(0, 16); // rx_queue_index
  return ctx;
}

async function main(): Promise<void> {
  let object: BpfObject | null = null;
  let frame: Buffer | null = null;
  let ctxIn: Buffer | null = null;
  const reply = (r: GeneratorReply): void => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
  };
  for await (const line of createInterface({ input: process.stdin })) {
    try {
      const request = JSON.parse(line) as GeneratorRequest;
      if ('quit' in request) break;
      if ('setup' in request) {
        const { objectPath, ifname, sources, template } = request.setup;
        if (sources.length === 0 || (sources.length & (sources.length - 1)) !== 0) throw new Error('sources: need a power-of-two count');
        object?.close(); // a second setup replaces the first (another set of sources)
        object = BpfObject.open(objectPath);
        await object.load();
        const srcs = object.map('gen_srcs');
        if (sources.length > srcs.maxEntries) throw new Error(`at most ${srcs.maxEntries} sources`);
        const keys = Buffer.alloc(sources.length * 4);
        const values = Buffer.alloc(sources.length * 4);
        sources.forEach((addr, i) => {
          keys.writeUInt32LE(i, i * 4);
          values.writeUInt32BE(addr, i * 4); // __be32, as in the IP header
        });
        await srcs.updateBatch(keys, values, sources.length);
        const count = Buffer.alloc(4);
        count.writeUInt32LE(sources.length);
        object.map('gen_cfg').update(Buffer.alloc(4), count);
        frame = Buffer.from(template, 'hex');
        const index = ifindex(ifname);
        ctxIn = xdpMd(frame.length, index);
        reply({ ready: true, ifindex: index });
      } else {
        if (!object || !frame || !ctxIn) throw new Error('not set up');
        const repeat = Math.min(Math.max(1, Math.floor(request.repeat)), GENERATOR_MAX_REPEAT);
        const started = process.hrtime.bigint();
        await object.program('bench_gen_tx').testRun({
          data: frame,
          ctxIn,
          repeat,
          flags: BPF_F_TEST_XDP_LIVE_FRAMES,
          dataSizeOut: 0,
        });
        reply({ sent: repeat, wallNs: Number(process.hrtime.bigint() - started) });
      }
    } catch (error) {
      reply({ error: error instanceof Error ? error.message : String(error) });
    }
  }
  object?.close();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`generator: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
