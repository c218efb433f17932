// A small client for the daemon's API, over TCP (http or https) or a unix
// socket (`--api unix:/run/xdpwall/api.sock`), which fetch() cannot reach.
// Over TCP it sends the bearer token; a private CA for https comes the
// standard Node way, NODE_EXTRA_CA_CERTS=FILE.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const DEFAULT_API = 'http://127.0.0.1:7070';

/** An error the CLI prints as one line and exits non-zero for. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
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
    const { tls, ...target } = this.target;
    const headers = {
      ...(payload !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
      ...(this.token && { authorization: `Bearer ${this.token}` }),
    };
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (tls ? httpsRequest : httpRequest)(
        {
          ...target,
          method,
          path,
          headers,
          timeout: 30_000,
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
      req.end(payload);
    });
    const parsed: unknown = text ? safeJson(text) : null;
    if (status >= 400) {
      const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
      throw new CliError(error ? `${error.code}: ${error.message}` : `HTTP ${status}`);
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
