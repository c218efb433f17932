// Sampled packets: GET /v1/events (Server-Sent Events, one DropEvent per
// message) and GET /v1/capture.pcap (the same packets as a pcap stream,
// bounded by seconds and count). Both subscribe to the firewall's event
// hub; each client has a bounded queue and is disconnected, and counted,
// when it stops reading (see src/events/client-queue.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CaptureQuery, DropEvent, EventQuery, EventStats } from '../schemas/events.js';
import { errorResponses } from '../schemas/common.js';
import type { ApiFirewall } from '../firewall.js';
import { compileEventFilter, type EventFilter, type SampledPacket } from '../../src/events/model.js';
import { ClientQueue } from '../../src/events/client-queue.js';
import { pcapHeader, pcapRecord } from '../../src/events/pcap.js';
import type { EventCounters } from '../../src/events/hub.js';

export interface EventRoutesOptions {
  firewall: Pick<ApiFirewall, 'events'>;
  /** How often /v1/events sends the loss counters (and keeps idle proxies from closing it). */
  statsIntervalMs?: number;
}

const countersJson = (c: EventCounters) => ({
  sampled: Number(c.sampled),
  lostCap: Number(c.lostCap),
  lostRing: Number(c.lostRing),
  slowClients: c.slowClients,
  listeners: c.listeners,
});

export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, { firewall, statsIntervalMs = 5000 }) => {
  // Streams never end on their own: closing the app ends them, or server.close() would wait for the clients.
  const open = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const finish of [...open]) finish();
  });

  /**
   * Hands the socket over to a stream: subscribes, runs until the client
   * goes or `finish` is called, and always unsubscribes and runs the
   * cleanups `start` registered.
   */
  const stream = (
    request: FastifyRequest,
    reply: FastifyReply,
    headers: Record<string, string>,
    filter: EventFilter,
    start: (s: { queue: ClientQueue; finish: () => void; onClose: (cleanup: () => void) => void }) => (packet: SampledPacket) => void,
  ): void => {
    reply.hijack();
    const res = reply.raw;
    // One stream per connection: when it ends the socket goes too, rather than idling until keep-alive times out.
    res.writeHead(200, { ...headers, connection: 'close' });
    const cleanups: (() => void)[] = [];
    let done = false;
    const close = (end: () => void): void => {
      if (done) return;
      done = true;
      for (const cleanup of cleanups) cleanup();
      end();
    };
    const finish = (): void => close(() => res.end());
    open.add(finish);
    cleanups.push(() => open.delete(finish));
    const queue = new ClientQueue(
      { write: (chunk) => res.write(chunk), onceDrain: (callback) => res.once('drain', callback) },
      () => {
        firewall.events.countSlowClient();
        request.log.warn({ reqId: request.id }, 'event client too slow: disconnected');
        close(() => res.destroy());
      },
    );
    const deliver = start({ queue, finish, onClose: (cleanup) => cleanups.push(cleanup) });
    cleanups.push(firewall.events.subscribe({ filter, deliver }));
    res.once('close', finish);
  };

  app.get('/v1/events', {
    schema: {
      tags: ['observe'],
      summary: 'Sampled packets (drops, logs) as Server-Sent Events',
      description:
        'Each message is a DropEvent (JSON). Every few seconds an `event: stats` message carries the loss counters. ' +
        'Filters: reason (comma-separated names), rule, block, src (CIDR), iface.',
      querystring: EventQuery,
      produces: ['text/event-stream'],
      response: { 200: { description: 'text/event-stream of DropEvent', content: { 'text/event-stream': { schema: DropEvent } } }, ...errorResponses(400) },
    },
  }, async (request, reply) => {
    const filter = compileEventFilter(request.query);
    let id = 0;
    stream(request, reply, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    }, filter, ({ queue, onClose }) => {
      queue.push(`retry: 2000\n: listening\n\n`);
      const stats = setInterval(() => queue.push(`event: stats\ndata: ${JSON.stringify(countersJson(firewall.events.counters()))}\n\n`), statsIntervalMs);
      onClose(() => clearInterval(stats));
      return (packet) => queue.push(`id: ${++id}\ndata: ${JSON.stringify(packet.event)}\n\n`);
    });
  });

  app.get('/v1/events/stats', {
    schema: {
      tags: ['observe'],
      summary: 'Events sampled, lost to the cap or a full ring, and slow clients dropped',
      response: { 200: EventStats },
    },
  }, async () => countersJson(firewall.events.counters()));

  app.get('/v1/capture.pcap', {
    schema: {
      tags: ['observe'],
      summary: 'The sampled packets as a pcap file (Ethernet, 128-byte snapshots), for tshark and Wireshark',
      description: 'Streams until `seconds` have passed or `count` packets were written. Same filters as /v1/events.',
      querystring: CaptureQuery,
      produces: ['application/vnd.tcpdump.pcap'],
      response: { 200: { description: 'pcap stream', content: { 'application/vnd.tcpdump.pcap': { schema: { type: 'string', format: 'binary' } } } }, ...errorResponses(400) },
    },
  }, async (request, reply) => {
    const { seconds, count } = request.query;
    const filter = compileEventFilter(request.query);
    let written = 0;
    stream(request, reply, {
      'content-type': 'application/vnd.tcpdump.pcap',
      'content-disposition': 'attachment; filename="xdpwall.pcap"',
      'cache-control': 'no-cache',
    }, filter, ({ queue, finish, onClose }) => {
      queue.push(pcapHeader());
      const timer = setTimeout(finish, seconds * 1000);
      onClose(() => clearTimeout(timer));
      return (packet) => {
        if (written >= count) return;
        queue.push(pcapRecord(packet.wallUs, packet.frame, packet.event.length));
        if (++written >= count) finish();
      };
    });
  });
};
