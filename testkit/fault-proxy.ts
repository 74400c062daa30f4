// A loopback TCP proxy in front of one server (etcd in the tests) that injects real transport faults:
// - cut()/restore(): every connection closed and new ones refused (the server looks down; it keeps serving
//   others);
// - loseReplies(): requests keep reaching the server, but its replies are held for a window and then either
//   released late (a slow network) or thrown away with the connection (a reply lost after the server acted).
//   It can be armed to start when a request carries given bytes, e.g. a lease value: plain-text gRPC (h2c)
//   carries protobuf fields unencoded, so the write that carries them is the one whose reply is lost.
// Loopback only; every socket is closed by close().
import * as net from 'node:net';

export interface LoseRepliesOptions {
  /** Start when a client→server chunk contains these bytes (default: at once). */
  whenRequestContains?: string | Buffer;
  /** How long replies are held (ms). */
  holdMs: number;
  /** After the window: `release` sends the held bytes late; `cut` drops them and closes every connection. */
  afterwards: 'release' | 'cut';
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  /** Server→client bytes held back while replies are being lost. */
  held: Buffer[];
  /** Tail of the last client chunk, so a pattern split across chunks is still found. */
  tail: Buffer;
}

interface Fault {
  pattern: Buffer | undefined;
  options: LoseRepliesOptions;
  active: boolean;
  triggered: () => void;
}

export class FaultProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();
  private fault: Fault | undefined;
  /** Replies dropped by `cut` faults so far (bytes), for the test to check the fault really happened. */
  droppedReplyBytes = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    private port: number,
  ) {}

  static async start(target: string): Promise<FaultProxy> {
    const url = new URL(target);
    const proxy = new FaultProxy(url.hostname, Number(url.port), 0);
    await proxy.listen();
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private listen(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      const pair: Pair = { client, upstream, held: [], tail: Buffer.alloc(0) };
      this.pairs.add(pair);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', drop);
      upstream.on('error', drop);
      client.on('close', drop);
      upstream.on('close', drop);
      client.on('data', (chunk: Buffer) => {
        this.inspect(pair, chunk);
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (this.fault?.active) pair.held.push(chunk);
        else client.write(chunk);
      });
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        const addr = server.address();
        if (addr && typeof addr !== 'string') this.port = addr.port;
        resolve();
      });
    });
  }

  /** Arms the fault when a request carries the pattern. */
  private inspect(pair: Pair, chunk: Buffer): void {
    const fault = this.fault;
    if (!fault || fault.active || !fault.pattern) return;
    const window = Buffer.concat([pair.tail, chunk]);
    pair.tail = window.subarray(Math.max(0, window.length - fault.pattern.length + 1));
    if (window.includes(fault.pattern)) this.activate(fault);
  }

  private activate(fault: Fault): void {
    fault.active = true;
    fault.triggered();
    setTimeout(() => void this.endFault(fault), fault.options.holdMs);
  }

  private async endFault(fault: Fault): Promise<void> {
    if (this.fault !== fault) return;
    this.fault = undefined;
    if (fault.options.afterwards === 'release') {
      for (const pair of this.pairs) {
        for (const chunk of pair.held.splice(0)) pair.client.write(chunk);
      }
      return;
    }
    for (const pair of [...this.pairs]) {
      for (const chunk of pair.held.splice(0)) this.droppedReplyBytes += chunk.length;
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
  }

  /**
   * Loses the server's replies for `holdMs` (see the file comment). Resolves when the window starts (at
   * once, or when a request carries `whenRequestContains`). One fault at a time.
   */
  loseReplies(options: LoseRepliesOptions): Promise<void> {
    if (this.fault) throw new Error('a reply fault is already armed on this proxy');
    return new Promise((resolve) => {
      const pattern =
        options.whenRequestContains === undefined
          ? undefined
          : Buffer.isBuffer(options.whenRequestContains)
            ? options.whenRequestContains
            : Buffer.from(options.whenRequestContains, 'utf8');
      const fault: Fault = { pattern, options, active: false, triggered: resolve };
      this.fault = fault;
      for (const pair of this.pairs) pair.tail = Buffer.alloc(0);
      if (!pattern) this.activate(fault);
    });
  }

  /** Whether a reply fault is armed or running. */
  get faulting(): boolean {
    return this.fault !== undefined;
  }

  /** Closes every connection and refuses new ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Accepts connections again after `cut()`. */
  async restore(): Promise<void> {
    if (!this.server) await this.listen();
  }

  async close(): Promise<void> {
    this.fault = undefined;
    await this.cut();
  }
}
