// A stand-in for CrowdSec's Local API decision stream, as LAPI 1.4 serves
// it to bouncers (checked against Debian 12's crowdsec 1.4.6):
//   GET /v1/decisions/stream[?startup=true], header X-Api-Key
//   403 {"message":"access forbidden"} for a wrong or missing key
//   200 {"deleted": [...] | null, "new": [...] | null}
// startup=true answers every active decision in "new" (and decisions that
// ended since the previous pull in "deleted"); later pulls answer what
// changed since this bouncer's previous pull. Decisions carry id, origin,
// scenario, scope ("Ip", "Range", ...), type, value and the remaining time
// as a Go duration ("3h59m58.1s"; negative once expired or deleted).
// It serves from 127.0.0.1 on a port of its own; faults can be queued.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DoubleDecision {
  id: number;
  type: string;
  scope: string;
  value: string;
  origin: string;
  scenario: string;
  expiresAtMs: number;
  /** Sequence of its creation and, once ended, of its end. */
  createdSeq: number;
  endedSeq?: number;
}

export type Fault =
  | { kind: 'status'; status: number; body?: string }
  | { kind: 'body'; body: string }
  | { kind: 'hang' };

/** Go's time.Duration.String() for a millisecond count (to the microsecond). */
export function formatGoDuration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  const trim = (n: number, digits: number) => n.toFixed(digits).replace(/\.?0+$/, '');
  if (abs === 0) return '0s';
  if (abs < 1000) return `${sign}${trim(abs, 6)}ms`;
  const h = Math.floor(abs / 3_600_000);
  const m = Math.floor((abs % 3_600_000) / 60_000);
  const s = (abs % 60_000) / 1000;
  return `${sign}${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${trim(s, 9)}s`;
}

export class LapiDouble {
  readonly decisions = new Map<number, DoubleDecision>();
  readonly requests: Array<{ url: string; apiKey: string | undefined }> = [];
  private readonly faults: Fault[] = [];
  private readonly lastPull = new Map<string, number>();
  private readonly hanging: ServerResponse[] = [];
  private seq = 0;
  private nextId = 1;
  private server!: Server;
  url = '';

  constructor(
    readonly apiKey: string,
    private readonly now: () => number = Date.now,
  ) {}

  async start(): Promise<this> {
    this.server = createServer((request, response) => this.handle(request, response));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const response of this.hanging) response.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * What `cscli decisions add --ip|--range VALUE --duration D --type T` makes.
   * `late`: what LAPI 1.4 does to a batch of an import that a pull raced (its
   * created_at is stamped before the pull started, its INSERT commits after
   * the pull read): no delta ever carries it, only startup=true does.
   */
  add(value: string, options: { scope?: string; type?: string; durationMs?: number; late?: boolean } = {}): number {
    const id = this.nextId++;
    const scope = options.scope ?? (value.includes('/') ? 'Range' : 'Ip');
    this.decisions.set(id, {
      id, scope, value, type: options.type ?? 'ban', origin: 'cscli', scenario: "manual 'ban' from 'test'",
      expiresAtMs: this.now() + (options.durationMs ?? 3_600_000), createdSeq: options.late ? 0 : ++this.seq,
    });
    return id;
  }

  /** What `cscli decisions delete --id ID` does. */
  delete(id: number): void {
    const decision = this.decisions.get(id);
    if (!decision || decision.endedSeq !== undefined) throw new Error(`no active decision ${id}`);
    decision.endedSeq = ++this.seq;
    decision.expiresAtMs = this.now();
  }

  fault(fault: Fault): void {
    this.faults.push(fault);
  }

  private view(d: DoubleDecision) {
    return { duration: formatGoDuration(d.expiresAtMs - this.now()), id: d.id, origin: d.origin, scenario: d.scenario, scope: d.scope, type: d.type, value: d.value };
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? '/', this.url);
    const apiKey = request.headers['x-api-key'] as string | undefined;
    this.requests.push({ url: url.pathname + url.search, apiKey });
    const send = (status: number, body: string): void => {
      response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' }).end(body);
    };
    if (url.pathname !== '/v1/decisions/stream' || request.method !== 'GET') return send(404, '{"message":"Page or Method not found"}');
    if (apiKey !== this.apiKey) return send(403, '{"message":"access forbidden"}');
    const fault = this.faults.shift();
    if (fault?.kind === 'hang') {
      this.hanging.push(response);
      return;
    }
    if (fault?.kind === 'status') return send(fault.status, fault.body ?? '{"message":"internal error"}');
    if (fault?.kind === 'body') return send(200, fault.body);
    const startup = url.searchParams.get('startup') === 'true';
    const since = startup ? 0 : (this.lastPull.get(apiKey) ?? 0);
    const now = this.now();
    // Expiry is an end too (LAPI reports expired decisions as deleted).
    for (const d of this.decisions.values()) if (d.endedSeq === undefined && d.expiresAtMs <= now) d.endedSeq = ++this.seq;
    const all = [...this.decisions.values()];
    const fresh = all.filter((d) => d.endedSeq === undefined && (startup || d.createdSeq > since)).map((d) => this.view(d));
    const ended = all.filter((d) => d.endedSeq !== undefined && d.endedSeq > (this.lastPull.get(apiKey) ?? 0)).map((d) => this.view(d));
    this.lastPull.set(apiKey, this.seq);
    send(200, JSON.stringify({ deleted: ended.length > 0 ? ended : null, new: fresh.length > 0 ? fresh : null }));
  }
}
