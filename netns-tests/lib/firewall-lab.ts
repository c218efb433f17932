// One suite's world: a client/server namespace pair, optionally a UDP
// responder on the server, and the real daemon filtering the server's end.
// setUp() builds it step by step; tearDown() removes whatever was built, even
// after a failure half-way.
import { ApiClient } from './api-client.js';
import { newDaemonState, removeDaemonState, startDaemon, type Daemon, type DaemonState } from './daemon.js';
import { assertBuilt, assertRoot, createLabPair, type LabPair } from './lab-env.js';
import { teardown } from './teardown.js';
import { startUdpEcho, waitReachable, type UdpEchoServer } from './traffic.js';

export interface FirewallLabOptions {
  /** Third IPv4 octet / IPv6 /64 of this suite's addresses (unique per suite). */
  subnet: number;
  /** Start a UDP responder on the server answering with replyBytes-byte payloads. */
  echo?: { port: number; replyBytes: number };
  /** Start the daemon in setUp(); default true. */
  daemon?: boolean;
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is not set up`);
  return value;
}

export class FirewallLab {
  private pair?: LabPair;
  private echoServer?: UdpEchoServer;
  private daemonProcess?: Daemon;
  private daemonState?: DaemonState;

  constructor(private readonly options: FirewallLabOptions) {}

  get lab(): LabPair {
    return required(this.pair, 'the lab');
  }

  get daemon(): Daemon {
    return required(this.daemonProcess, 'the daemon');
  }

  get api(): ApiClient {
    return new ApiClient(this.daemon.baseUrl, this.daemon.state.token);
  }

  async setUp(): Promise<void> {
    assertRoot();
    if (this.options.daemon !== false) assertBuilt();
    this.pair = await createLabPair(this.options.subnet);
    await waitReachable(this.pair.client.netns, this.pair.server.ipv4);
    await waitReachable(this.pair.client.netns, this.pair.server.ipv6);
    const { echo } = this.options;
    if (echo) this.echoServer = await startUdpEcho(this.pair.server.netns, echo.port, echo.replyBytes);
    if (this.options.daemon !== false) await this.startDaemon();
  }

  /** Starts the daemon on the server interface; the state directory is the same on every start. */
  async startDaemon(): Promise<ApiClient> {
    this.daemonState ??= newDaemonState();
    this.daemonProcess = await startDaemon({ ifaces: [this.lab.serverIface], state: this.daemonState });
    return this.api;
  }

  async tearDown(): Promise<void> {
    const state = this.daemonState;
    await teardown(
      () => this.echoServer?.stop(),
      () => this.daemonProcess?.stop(),
      () => this.pair?.destroy(),
      () => state && removeDaemonState(state),
    );
  }
}
