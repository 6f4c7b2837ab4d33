// A tiny Redis client (RESP2 over node:net) for the one thing the agent does with Redis: delete an
// environment's object-cache keys. Keys are `<WP_REDIS_PREFIX>...`; they are found with SCAN and a
// MATCH pattern whose glob characters are escaped (a prefix is a literal, never a pattern), every
// key is checked again byte for byte against the prefix, and deleted with UNLINK in batches.
// FLUSHDB and FLUSHALL are never sent: other environments share the database.
import { connect, type Socket } from 'node:net';
import { ProvisioningError } from './errors.ts';

export type RespReply = Buffer | number | null | RespReply[] | { error: string } | { status: string };

/** `*`, `?`, `[`, `]` and `\` escaped: the pattern matches exactly the literal `text`. */
export function escapeRedisGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

function encode(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg) : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** One RESP2 reply at `offset`; undefined when the buffer holds only part of it. */
export function parseReply(buffer: Buffer, offset = 0): { value: RespReply; next: number } | undefined {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buffer[offset] ?? 0);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: { status: line }, next };
    case '-':
      return { value: { error: line }, next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next };
      if (buffer.length < next + length + 2) return undefined;
      return { value: Buffer.from(buffer.subarray(next, next + length)), next: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items: RespReply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, at);
        if (!item) return undefined;
        items.push(item.value);
        at = item.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

export interface RedisTarget {
  host: string;
  port: number;
  timeoutMs?: number;
}

/** One connection; commands are answered in order. */
export class RedisConnection {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  readonly #waiting: { resolve: (value: RespReply) => void; reject: (error: Error) => void }[] = [];
  #failure: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      for (;;) {
        let parsed: ReturnType<typeof parseReply>;
        try {
          parsed = parseReply(this.#buffer);
        } catch (err) {
          this.#fail(err as Error);
          return;
        }
        if (!parsed) return;
        this.#buffer = this.#buffer.subarray(parsed.next);
        this.#waiting.shift()?.resolve(parsed.value);
      }
    });
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error('the Redis connection closed')));
  }

  static open(target: RedisTarget): Promise<RedisConnection> {
    const timeoutMs = target.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const socket = connect({ host: target.host, port: target.port });
      socket.setTimeout(timeoutMs, () =>
        socket.destroy(new Error(`Redis: no answer within ${timeoutMs} ms`)),
      );
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RedisConnection(socket));
      });
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
  }

  /** Sends one command; a Redis error reply rejects. */
  async command(...args: (string | Buffer)[]): Promise<RespReply> {
    if (this.#failure) throw this.#failure;
    const reply = await new Promise<RespReply>((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#socket.write(encode(args));
    });
    if (reply && typeof reply === 'object' && 'error' in reply) {
      throw new Error(`Redis ${String(args[0])}: ${reply.error}`);
    }
    return reply;
  }

  close(): void {
    this.#socket.removeAllListeners('close');
    this.#socket.on('error', () => {});
    this.#socket.end();
    this.#socket.destroy();
  }
}

/**
 * Deletes every key that starts with `prefix` (SCAN MATCH `<escaped prefix>*` + UNLINK in batches
 * of `batch`); returns how many were removed. Other keys are never touched.
 */
export async function deleteKeysWithPrefix(
  target: RedisTarget,
  prefix: string,
  options: { batch?: number; signal?: AbortSignal } = {},
): Promise<number> {
  if (prefix.length === 0) throw new ProvisioningError('invalid_argument', 'the Redis key prefix is empty');
  const batch = options.batch ?? 500;
  const literal = Buffer.from(prefix);
  const pattern = `${escapeRedisGlob(prefix)}*`;
  let connection: RedisConnection;
  try {
    connection = await RedisConnection.open(target);
  } catch (err) {
    throw new ProvisioningError(
      'command_failed',
      `cannot reach Redis at ${target.host}:${target.port}: ${(err as Error).message}`,
    );
  }
  try {
    let cursor = '0';
    let removed = 0;
    do {
      if (options.signal?.aborted) throw new Error('cancelled');
      const reply = await connection.command('SCAN', cursor, 'MATCH', pattern, 'COUNT', String(batch));
      if (!Array.isArray(reply) || !Buffer.isBuffer(reply[0]) || !Array.isArray(reply[1])) {
        throw new Error('Redis SCAN: unexpected reply');
      }
      cursor = reply[0].toString('utf8');
      const keys = reply[1].filter(
        (key): key is Buffer =>
          Buffer.isBuffer(key) &&
          key.length >= literal.length &&
          key.subarray(0, literal.length).equals(literal),
      );
      if (keys.length > 0) {
        const count = await connection.command('UNLINK', ...keys);
        removed += typeof count === 'number' ? count : 0;
      }
    } while (cursor !== '0');
    return removed;
  } catch (err) {
    if (err instanceof ProvisioningError) throw err;
    throw new ProvisioningError(
      'command_failed',
      `deleting the Redis keys under ${prefix} failed: ${(err as Error).message}`,
    );
  } finally {
    connection.close();
  }
}
