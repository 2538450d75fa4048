/**
 * A TCP proxy to PostgreSQL for the tests of the state database going away: it forwards, refuses
 * connections (cut: the server is down), or swallows everything (blackhole: a hung server or a
 * dropped network), and is restored on the same port.
 */
import net from 'node:net';

type Mode = 'forward' | 'blackhole';

/** A TCP proxy to PostgreSQL that can refuse connections (closed), swallow everything (blackhole), or forward. */
export class CuttableProxy {
  private server = net.createServer((socket) => this.accept(socket));
  private readonly sockets = new Set<net.Socket>();
  private mode: Mode = 'forward';
  port = 0;

  constructor(private readonly upstream: { host: string; port: number }) {}

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => {});
    if (this.mode === 'blackhole') {
      client.resume(); // read and drop
      return;
    }
    const server = net.connect(this.upstream);
    this.sockets.add(server);
    server.on('close', () => {
      this.sockets.delete(server);
      client.destroy();
    });
    server.on('error', () => {});
    client.on('close', () => server.destroy());
    // Forward while the proxy forwards; in a blackhole, bytes in either direction are dropped.
    client.on('data', (chunk) => this.mode === 'forward' && server.write(chunk));
    server.on('data', (chunk) => this.mode === 'forward' && client.write(chunk));
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** The server is down: new connections are refused, open ones reset. */
  async cut(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropAll();
    await closed;
  }

  /** The network swallows everything: connections are accepted (and open ones stay open), nothing comes back. */
  blackhole(): void {
    this.mode = 'blackhole';
  }

  /** Back to normal. Connections that lost bytes in a blackhole are out of step for ever, so they are reset. */
  async restore(): Promise<void> {
    const wasBlackhole = this.mode === 'blackhole';
    this.mode = 'forward';
    if (wasBlackhole) this.dropAll();
    if (!this.server.listening) {
      this.server = net.createServer((socket) => this.accept(socket));
      await this.listen(this.port);
    }
  }

  private dropAll(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.dropAll();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
