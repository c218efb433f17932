// A small client for the daemon's API, over TCP (http or https) or a unix
// socket (`--api unix:/run/xdpwall/api.sock`), which fetch() cannot reach.
// Over TCP it sends the bearer token; a private CA for https comes the
// standard Node way, NODE_EXTRA_CA_CERTS=FILE.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { formatListen, type ListenAddress } from '../src/config.js';

export const DEFAULT_API = 'http://127.0.0.1:7070';

/** The --api value that reaches a daemon listening at `listen`. */
export function apiUrl(listen: ListenAddress, tls = false): string {
  return listen.kind === 'unix' ? `unix:${listen.path}` : `${tls ? 'https' : 'http'}://${formatListen(listen)}`;
}

/** An error the CLI prints as one line and exits non-zero for. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    /** The API's error code (e.g. ROUTE_NOT_FOUND), when the API refused. */
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

interface Endpoint {
  tls: boolean;
  socketPath?: string;
  host?: string;
  port?: number;
  label: string;
}

function endpoint(api: string): Endpoint {
  if (api.startsWith('unix:')) return { tls: false, socketPath: api.slice('unix:'.length), label: api };
  let url: URL;
  try {
    url = new URL(api);
  } catch {
    throw new CliError(`--api "${api}" is neither an http:// URL nor unix:PATH`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`--api "${api}": only http://, https:// and unix: are supported`, 2);
  const tls = url.protocol === 'https:';
  return { tls, host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (tls ? 443 : 80)), label: api };
}

export class ApiClient {
  private readonly target: Endpoint;

  /** `token`: sent as "Authorization: Bearer" (the unix socket needs none). */
  constructor(
    api: string,
    private readonly token?: string,
  ) {
    this.target = endpoint(api);
  }

  /** Sends a request; a 4xx/5xx becomes a CliError carrying the API's code and message. */
  async call<T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return this.exchange<T>(method, path, {
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      timeoutMs: 30_000,
      send: async (req) => void req.end(payload),
    });
  }

  /**
   * Streams a body (e.g. an ndjson bulk import) chunk by chunk, honouring
   * back-pressure: `source` is pulled only as fast as the daemon reads.
   */
  async upload<T>(method: string, path: string, contentType: string, source: AsyncIterable<Buffer | string>): Promise<ApiResponse<T>> {
    return this.exchange<T>(method, path, {
      headers: { 'content-type': contentType },
      // A million-rule import is installed after the last byte: no response for a while is normal.
      timeoutMs: 600_000,
      send: async (req) => {
        for await (const chunk of source) {
          if (req.destroyed) return;
          if (!req.write(chunk)) await new Promise<void>((resolve) => { req.once('drain', resolve); req.once('close', resolve); });
        }
        req.end();
      },
    });
  }

  /**
   * GET whose body is read as it arrives (Server-Sent Events, a pcap
   * capture): resolves to the response once the status is 2xx; a 4xx/5xx
   * becomes a CliError as in call(). No timeout: streams run until they end.
   */
  async stream(path: string): Promise<IncomingMessage> {
    const { tls, ...target } = this.target;
    const headers = this.token ? { authorization: `Bearer ${this.token}` } : {};
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (tls ? httpsRequest : httpRequest)({ ...target, method: 'GET', path, headers }, resolve);
      req.on('error', (error: NodeJS.ErrnoException) =>
        reject(new CliError(`cannot reach the xdpwall daemon at ${this.target.label}: ${error.code ?? error.message}`)),
      );
      req.end();
    });
    const status = res.statusCode ?? 0;
    if (status < 400) return res;
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const error = (safeJson(Buffer.concat(chunks).toString('utf8')) as { error?: { code?: string; message?: string } } | null)?.error;
    throw new CliError(error ? `${error.code}: ${error.message}` : `HTTP ${status}`, 1, error?.code);
  }

  private async exchange<T>(
    method: string,
    path: string,
    options: { headers: Record<string, string | number>; timeoutMs: number; send: (req: ClientRequest) => Promise<void> },
  ): Promise<ApiResponse<T>> {
    const { tls, ...target } = this.target;
    const headers = { ...options.headers, ...(this.token && { authorization: `Bearer ${this.token}` }) };
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (tls ? httpsRequest : httpRequest)(
        {
          ...target,
          method,
          path,
          headers,
          timeout: options.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (error: NodeJS.ErrnoException) =>
        reject(new CliError(`cannot reach the xdpwall daemon at ${this.target.label}: ${error.code ?? error.message}`)),
      );
      // The daemon may answer (an error) before the whole body is sent; the response wins.
      options.send(req).catch((error: Error) => req.destroy(error));
    });
    const parsed: unknown = text ? safeJson(text) : null;
    if (status >= 400) {
      const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
      throw new CliError(error ? `${error.code}: ${error.message}` : `HTTP ${status}`, 1, error?.code);
    }
    return { status, body: parsed as T };
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
