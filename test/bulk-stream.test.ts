// POST /v1/blocks/bulk reads its body as a stream: the scanner against
// JSON.parse on seeded random splits, both body forms, the errors, one
// import at a time, and the event loop kept free while a long import runs.
import { Readable } from 'node:stream';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import { readBulkItems } from '../api/bulk-body.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { prng } from './lib/prng.js';

/** A body delivered in pieces cut at the given byte offsets. */
function pieces(text: string, cuts: number[]): Readable {
  const bytes = Buffer.from(text);
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length];
  return Readable.from(bounds.slice(1).map((end, i) => bytes.subarray(bounds[i], end)));
}

async function readAll(body: Readable, contentType = 'application/json', limit = 1 << 20): Promise<unknown[]> {
  const items: unknown[] = [];
  for await (const chunk of readBulkItems(body, contentType, limit)) items.push(...chunk);
  return items;
}

describe('readBulkItems', () => {
  const items = [
    { cidr: '198.18.0.0/15' },
    { cidr: 'fd00:198::/48', direction: 'dst', comment: 'quotes " and \\\\ and }] and {[ and ünïcödé ✓' },
    { comment: null, cidr: '198.18.7.7' },
  ];

  it('gives what JSON.parse gives, however the body is cut (seeded)', async () => {
    const random = prng(20261202);
    const text = ` {\n "items" : [ ${items.map((item) => JSON.stringify(item, null, random() < 0.5 ? 1 : 0)).join(' ,\n')} ] } \n`;
    const length = Buffer.byteLength(text);
    for (let run = 0; run < 200; run++) {
      const cuts = Array.from({ length: 1 + Math.floor(random() * 12) }, () => Math.floor(random() * length));
      expect(await readAll(pieces(text, cuts))).toEqual(items);
    }
    expect(await readAll(pieces(text, Array.from({ length }, (_, i) => i)))).toEqual(items); // one byte at a time
  });

  it('reports the envelope\'s force, before or after the items', async () => {
    for (const text of ['{"force":true,"items":[{"cidr":"198.18.0.0/15"}]}', '{"items":[{"cidr":"198.18.0.0/15"}],"force":true}']) {
      const envelope: { force?: boolean } = {};
      for await (const chunk of readBulkItems(pieces(text, [11]), 'application/json', 1 << 20, envelope)) expect(chunk).toHaveLength(1);
      expect(envelope).toEqual({ force: true });
    }
  });

  it('reads NDJSON, one item per line, blank lines allowed', async () => {
    const text = `${items.map((item) => JSON.stringify(item)).join('\n')}\n\n`;
    expect(await readAll(pieces(text, [5, 40, 41]), 'application/x-ndjson')).toEqual(items);
    expect(await readAll(pieces('{"cidr":"198.18.0.0/15"}', []), 'application/x-ndjson; charset=utf-8')).toEqual([items[0]]);
  });

  it.each([
    ['', 'INVALID_JSON', /empty/],
    ['{"items":[{"cidr":"198.18.0.0/15"}', 'INVALID_JSON', /ends before/],
    ['{"items":[{"cidr":"198.18.0.0/15"} {"cidr":"198.18.0.0/16"}]}', 'INVALID_JSON', /expected ',' or '\]'/],
    ['{"items":[{"cidr":"198.18.0.0/15",}]}', 'INVALID_JSON', /^items\[0\]: /],
    ['{"items":[{"cidr":"198.18.0.0/15"},]}', 'INVALID_JSON', /expected an item after ','/],
    ['{"items":[]} x', 'INVALID_JSON', /expected the end/],
    ['[{"cidr":"198.18.0.0/15"}]', 'INVALID_JSON', /expected '\{'/],
    ['{"items":"all"}', 'INVALID_REQUEST', /items must be an array/],
    ['{}', 'INVALID_REQUEST', /must have items/],
    ['{"items":[],"colour":true}', 'INVALID_REQUEST', /unexpected field "colour"/],
    ['{"force":"yes","items":[]}', 'INVALID_REQUEST', /force must be true or false/],
    ['{"items":[],"items":[]}', 'INVALID_REQUEST', /unexpected field "items"/],
    ['{"items":[{"cidr":["198.18.0.0/15"]}]}', 'INVALID_REQUEST', /^body\/items\/0\/cidr must be string$/],
    ['{"items":[{"cidr":"198.18.0.0/15","colour":"red"}]}', 'INVALID_REQUEST', /^body\/items\/0 must NOT have additional properties \(colour\)$/],
    ['{"items":["198.18.0.0/15"]}', 'INVALID_REQUEST', /^body\/items\/0 must be object$/],
  ])('%s: %s', async (text, code, message) => {
    await expect(readAll(pieces(text, [3, 17]))).rejects.toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }));
  });

  it('refuses a body over the limit, and an item over the item limit, without holding it', async () => {
    const big = `{"items":[${Array.from({ length: 100 }, () => '{"cidr":"198.18.0.0/15"}').join(',')}]}`;
    await expect(readAll(pieces(big, [100, 200]), 'application/json', 1000)).rejects.toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }));
    const huge = `{"items":[{"cidr":"198.18.0.0/15","comment":"${'x'.repeat(70_000)}"}]}`;
    await expect(readAll(pieces(huge, Array.from({ length: 80 }, (_, i) => i * 1000)))).rejects.toThrow(expect.objectContaining({ code: 'INVALID_REQUEST', message: expect.stringMatching(/longer than 65536 bytes/) }));
  });
});

describe('POST /v1/blocks/bulk over HTTP', () => {
  let firewall: Firewall;
  let app: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    firewall = await openTestFirewall({ cidrV4: 1 << 18, cidrV6: 1024, flows: 1024 });
    app = await buildApp({ firewall });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    firewall?.close();
  });

  type Body = string | ReadableStream<Uint8Array>;

  const post = (body: Body, contentType = 'application/json') =>
    fetch(`${base}/v1/blocks/bulk`, { method: 'POST', headers: { 'content-type': contentType }, body, duplex: 'half' } as RequestInit);

  it('takes NDJSON', async () => {
    const response = await post('{"cidr":"198.18.1.0/24"}\n{"cidr":"198.18.2.0/24","direction":"dst"}\n', 'application/x-ndjson');
    expect(await response.json()).toEqual({ created: 2, existing: 0 });
    expect((await post('{"cidr":"198.18.1.0/24"}', 'text/plain')).status).toBe(415);
  });

  it('runs one import at a time: a second gets 409 BUSY while the first is still sending', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slowBody = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new TextEncoder().encode('{"items":[{"cidr":"198.18.3.0/24"}'));
        await gate;
        controller.enqueue(new TextEncoder().encode(']}'));
        controller.close();
      },
    });
    const first = post(slowBody);
    // The first request has reached the handler once its first item is in (it is in the store's lock queue or reading).
    let second: Response;
    for (;;) {
      second = await post('{"items":[{"cidr":"198.18.4.0/24"}]}');
      if (second.status !== 200) break;
      await post('{"items":[]}'); // raced ahead of the first: undo nothing, try again
    }
    expect(second.status).toBe(409);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe('BUSY');
    release();
    expect(await (await first).json()).toEqual({ created: 1, existing: 0 });
  });

  it('keeps the event loop and /healthz answering during a 200,000-rule import', async () => {
    const count = 200_000;
    const items = Array.from({ length: count }, (_, i) => `{"cidr":"10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32"}`);
    const body = `{"items":[${items.join(',')}]}`;
    const delay = monitorEventLoopDelay({ resolution: 5 });
    const probes: number[] = [];
    let importing = true;
    delay.enable();
    const prober = (async () => {
      while (importing) {
        const t0 = performance.now();
        expect((await fetch(`${base}/healthz`)).status).toBe(200);
        probes.push(performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    const response = await post(body);
    importing = false;
    await prober;
    delay.disable();
    expect(await response.json()).toEqual({ created: count, existing: 0 });
    // Loose bounds (a shared, busy machine): the loop never stalls for the import's length, and
    // health checks keep being answered throughout.
    const maxStallMs = delay.max / 1e6;
    console.info(`bulk import of ${count}: event-loop delay max ${maxStallMs.toFixed(0)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(0)} ms; /healthz ${probes.length} probes, max ${Math.max(...probes).toFixed(0)} ms`);
    expect(probes.length).toBeGreaterThan(10);
    expect(maxStallMs).toBeLessThan(500);
  });
});
