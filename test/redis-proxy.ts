/**
 * A TCP proxy to Redis for the Redis provider's race tests: it can hold the chunk a client sends
 * that carries a given command (and everything the client sends after it) while the test lets
 * other nodes act, then pass it to the real Redis and wait for Redis to have acted on it, keeping
 * the answer back from the client; then hand the answer over (the client carries on, having
 * lost the race) or cut the client off without it (the client dies there, as after kill -9).
 */
import net from 'node:net';

export interface Held {
  client: net.Socket;
  upstream: net.Socket;
  /** What the client sent from the held chunk on, not passed to Redis yet. */
  chunks: Buffer[];
  /** Redis's answers to what was passed, not given to the client yet. */
  answers: Buffer[];
  /** Whether the client's chunks are held, and Redis's answers kept back. */
  holding: boolean;
  keeping: boolean;
  /** Set while `pass` waits for the answers to be whole. */
  onAnswer: (() => void) | undefined;
  /** Whether a PING of the proxy's own went to Redis: its PONG must never reach the client. */
  pinged: boolean;
}

/** Whether a transaction's answers include EXEC's (its array, or the null array of one refused): the first array reply. */
export const execAnswered = (answers: string) => /(^|\r\n)\*-?\d+\r\n/.test(answers);

export class HoldingProxy {
  private readonly server: net.Server;
  private trap: { matches: (chunk: Buffer) => boolean; caught: (held: Held) => void } | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly upstream: { host: string; port: number }) {
    this.server = net.createServer((client) => this.connection(client));
  }

  /** A proxy to the Redis at `url`, listening. */
  static async to(url: string): Promise<HoldingProxy> {
    const { hostname, port } = new URL(url);
    const proxy = new HoldingProxy({ host: hostname || '127.0.0.1', port: Number(port || 6379) });
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /**
   * Resolves once a client sends a chunk containing `pattern` (a string, or a test of each
   * chunk): that chunk, and all its connection sends after it, are held.
   */
  hold(pattern: string | ((chunk: Buffer) => boolean)): Promise<Held> {
    const matches = typeof pattern === 'string' ? (chunk: Buffer) => chunk.includes(pattern) : pattern;
    return new Promise((caught) => {
      this.trap = { matches, caught };
    });
  }

  /**
   * Passes the held chunks to Redis and resolves once Redis answered them, as `answered` says of
   * the answers so far (without it: a PING is sent after them and its PONG waited for, and the
   * client may then only be cut off). The answers are kept from the client; what the client
   * sends meanwhile stays held.
   */
  async pass(held: Held, answered?: (answers: string) => boolean): Promise<void> {
    held.keeping = true;
    const chunks = held.chunks.splice(0);
    const whole = answered ?? ((answers: string) => answers.includes('+PONG\r\n'));
    const done = new Promise<void>((resolve) => {
      held.onAnswer = () => {
        if (!whole(Buffer.concat(held.answers).toString('latin1'))) return;
        held.onAnswer = undefined;
        resolve();
      };
    });
    for (const chunk of chunks) held.upstream.write(chunk);
    if (!answered) {
      held.pinged = true;
      held.upstream.write('PING\r\n');
    }
    await done;
  }

  /** Gives the client Redis's answers kept back, and lets its connection flow both ways again. */
  deliver(held: Held): void {
    if (held.pinged) throw new Error('the answers include the proxy’s own PONG: the client can only be cut off');
    held.holding = false;
    held.keeping = false;
    for (const chunk of held.chunks.splice(0)) held.upstream.write(chunk);
    for (const answer of held.answers.splice(0)) held.client.write(answer);
  }

  /** Ends both sides of the held connection, whatever was not passed or answered. */
  cut(held: Held): void {
    held.client.destroy();
    held.upstream.destroy();
  }

  /**
   * Passes the held chunks to Redis and waits for Redis to have acted on them, none of the
   * answers reaching the client; then `kill` ends the client (it must not reconnect and send
   * anything again), and both sides are cut.
   */
  async releaseThenKill(held: Held, kill: () => Promise<void>): Promise<void> {
    await this.pass(held);
    await kill();
    this.cut(held);
  }

  private connection(client: net.Socket): void {
    const upstream = net.connect(this.upstream.port, this.upstream.host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
    }
    let held: Held | undefined;
    client.on('data', (chunk) => {
      if (held?.holding) {
        held.chunks.push(chunk);
        return;
      }
      const trap = this.trap;
      // A connection held before, and let go, may be held again (fenced connections are reused).
      if (!held?.keeping && trap?.matches(chunk)) {
        this.trap = undefined;
        held = { client, upstream, chunks: [chunk], answers: [], holding: true, keeping: false, onAnswer: undefined, pinged: false };
        trap.caught(held);
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (held?.keeping) {
        held.answers.push(chunk);
        held.onAnswer?.();
        return;
      }
      client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
