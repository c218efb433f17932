// A typed client for the daemon's REST API, written from the contract (not
// from the server's schemas), so the suites check what users are promised.
export interface ApiResult<T> {
  status: number;
  body: T;
}

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export interface BlockRule {
  id: number;
  cidr: string;
  direction: 'src' | 'dst';
  comment: string | null;
  createdAt: string;
}

export interface BlockList {
  items: BlockRule[];
  total: number;
}

export interface CounterPair {
  packets: number;
  bytes: number;
}

export interface Flow {
  proto: string;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  iface: string | null;
  ingress: CounterPair;
  egress: CounterPair;
  firstSeen: string;
  lastSeen: string;
  tcpFlags: string[];
}

export interface InterfaceInfo {
  iface: string;
  ifindex: number;
  xdpMode: string;
  egress: boolean;
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<ApiResult<T>> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  }

  createBlock(cidr: string, extra: { comment?: string; direction?: 'src' | 'dst' } = {}): Promise<ApiResult<BlockRule>> {
    return this.request('POST', '/v1/blocks', { cidr, ...extra });
  }

  listBlocks(query: Record<string, string> = {}): Promise<ApiResult<BlockList>> {
    return this.request('GET', `/v1/blocks?${new URLSearchParams(query)}`);
  }

  deleteBlock(id: number): Promise<ApiResult<null>> {
    return this.request('DELETE', `/v1/blocks/${encodeURIComponent(String(id))}`);
  }

  deleteBlockByCidr(cidr: string): Promise<ApiResult<null>> {
    return this.request('DELETE', `/v1/blocks?${new URLSearchParams({ cidr })}`);
  }

  flows(query: Record<string, string> = {}): Promise<ApiResult<{ items: Flow[] }>> {
    return this.request('GET', `/v1/flows?${new URLSearchParams(query)}`);
  }

  stats(): Promise<ApiResult<unknown>> {
    return this.request('GET', '/v1/stats');
  }

  interfaces(): Promise<ApiResult<{ items: InterfaceInfo[] }>> {
    return this.request('GET', '/v1/interfaces');
  }
}
