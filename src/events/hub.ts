// The one reader of the xw_events ring buffer, fanning sampled packets out
// to the clients of /v1/events and /v1/capture.pcap. The data plane emits
// events only while XW_FEATURE_EVENTS is set, and the hub sets it only while
// at least one client listens: with nobody listening a packet pays one bit
// test. The ring is read on a timer, at most MAX_BATCH records per tick, so
// the event loop never stalls on it; the kernel's token bucket bounds how
// many arrive however hard the flood.
import { BpfRingBuffer, type BpfMap } from '@xdpwall/addon';
import { Feature, Layout } from '../datapath/abi.js';
import { EventStat, decodeEvent, encodeEventCfg, type EventCfg } from './abi.js';
import { eventCfgOf, type EventSettings } from './settings.js';
import { toSampledPacket, type EventContext, type EventFilter, type SampledPacket } from './model.js';
import type { Clock } from '../clock.js';

export interface EventMaps {
  ring: BpfMap;
  cfg: BpfMap;
  stats: BpfMap;
  /** xw_config, whose features word carries the gate. */
  config: BpfMap;
}

export interface Subscriber {
  filter: EventFilter;
  deliver(packet: SampledPacket): void;
}

export interface EventCounters {
  /** Events the kernel wrote to the ring. */
  sampled: bigint;
  /** Sampled, but over the events-per-second cap. */
  lostCap: bigint;
  /** Sampled, but the ring was full (the daemon did not keep up). */
  lostRing: bigint;
  /** Clients of /v1/events or /v1/capture.pcap disconnected for reading too slowly. */
  slowClients: number;
  /** Clients listening now. */
  listeners: number;
}

export interface EventHubOptions {
  clock: Clock;
  ifaceName(ifindex: number): string | undefined;
  /** How often the ring is read while someone listens. */
  pollMs?: number;
}

const MAX_BATCH = 2048;

export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
  private ring: BpfRingBuffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private slowClients = 0;
  private readonly pollMs: number;

  constructor(
    private readonly maps: EventMaps,
    settings: EventSettings,
    private readonly options: EventHubOptions,
  ) {
    this.pollMs = options.pollMs ?? 100;
    this.configure(eventCfgOf(settings));
    // A daemon that died with listeners left the gate open in the pinned config.
    this.setGate(false);
  }

  /** Writes the samplers and the cap (tests pass a fixed bucket clock). */
  configure(cfg: EventCfg): void {
    this.maps.cfg.update(Buffer.alloc(4), encodeEventCfg(cfg));
  }

  get listeners(): number {
    return this.subscribers.size;
  }

  /** Starts delivering matching events; returns the unsubscribe function. */
  subscribe(subscriber: Subscriber): () => void {
    if (this.subscribers.size === 0) this.open();
    this.subscribers.add(subscriber);
    return () => {
      if (!this.subscribers.delete(subscriber)) return;
      if (this.subscribers.size === 0) this.shut();
    };
  }

  /** A client was disconnected for not reading its events. */
  countSlowClient(): void {
    this.slowClients++;
  }

  /** Reads what the ring holds now and hands it out; the timer calls it, tests may too. */
  poll(): number {
    if (!this.ring) return 0;
    const records = this.ring.consume(MAX_BATCH);
    if (records.length === 0) return 0;
    const ctx = this.context();
    for (const record of records) {
      const raw = decodeEvent(record);
      if (!raw) continue;
      const packet = toSampledPacket(raw, ctx);
      for (const subscriber of [...this.subscribers]) if (subscriber.filter(packet)) subscriber.deliver(packet);
    }
    return records.length;
  }

  counters(): EventCounters {
    const value = (stat: number): bigint => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(stat);
      const bytes = this.maps.stats.lookup(key);
      if (!bytes) return 0n;
      let sum = 0n;
      for (let off = 0; off + 8 <= bytes.length; off += 8) sum += bytes.readBigUInt64LE(off);
      return sum;
    };
    return {
      sampled: value(EventStat.sampled),
      lostCap: value(EventStat.lostCap),
      lostRing: value(EventStat.lostRing),
      slowClients: this.slowClients,
      listeners: this.subscribers.size,
    };
  }

  close(): void {
    this.subscribers.clear();
    this.shut();
  }

  private context(): EventContext {
    const { clock } = this.options;
    const nowNs = clock.monotonicNs();
    const nowUs = BigInt(Math.round(clock.wallMs() * 1000));
    return {
      ifaceName: this.options.ifaceName,
      wallUs: (stampNs) => nowUs - (nowNs - stampNs) / 1000n,
    };
  }

  private open(): void {
    this.ring = new BpfRingBuffer(this.maps.ring.fd);
    // Whatever the ring still holds is from an earlier listener: not this one's.
    while (this.ring.consume(MAX_BATCH).length > 0);
    this.setGate(true);
    this.timer = setInterval(() => this.poll(), this.pollMs);
  }

  private shut(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.ring) this.setGate(false);
    this.ring?.close();
    this.ring = undefined;
  }

  private setGate(on: boolean): void {
    const key = Buffer.alloc(4);
    const value = this.maps.config.lookup(key) ?? Buffer.alloc(Layout.config.size);
    const features = value.readUInt32LE(Layout.config.features);
    const next = on ? features | Feature.events : features & ~Feature.events;
    if (next === features) return;
    value.writeUInt32LE(next >>> 0, Layout.config.features);
    this.maps.config.update(key, value);
  }
}

