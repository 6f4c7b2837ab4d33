// A private Redis server for one test suite: generated config (loopback port, no persistence), pid
// file, log and working directory in a temporary directory, removed on stop(). `command()` speaks
// RESP over TCP so tests can look at keys without a client library.
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { BINARIES } from './binaries.ts';
import { makeInstanceDir, removeInstanceDir, spawnDaemon, waitUntilReady } from './daemon.ts';
import { freePort } from './ports.ts';

export type RespValue = string | number | null | RespValue[] | RespError;

export class RespError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RespError';
  }
}

export interface RedisInstance {
  readonly dir: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly socketPath: string;
  readonly pid: number;
  /** Sends one command over a fresh TCP connection and returns the decoded reply. */
  command(...args: string[]): Promise<RespValue>;
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  parentDir?: string;
}

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisInstance> {
  const dir = await makeInstanceDir('redis', options.parentDir);
  const port = await freePort();
  const socketPath = path.join(dir, 'redis.sock');
  const configPath = path.join(dir, 'redis.conf');
  await writeFile(
    configPath,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      'protected-mode yes',
      'daemonize no',
      `pidfile ${path.join(dir, 'redis.pid')}`,
      `logfile ${path.join(dir, 'redis.log')}`,
      `dir ${dir}`,
      `unixsocket ${socketPath}`,
      'unixsocketperm 770',
      // No persistence: nothing is written besides the log and pid file.
      'save ""',
      'appendonly no',
      'databases 16',
      'maxmemory 64mb',
      'maxmemory-policy allkeys-lru',
      '',
    ].join('\n'),
  );
  const daemon = spawnDaemon({
    file: BINARIES.redisServer,
    args: [configPath],
    logFile: path.join(dir, 'redis.out'),
    cwd: dir,
  });
  const command = (...args: string[]) => redisCommand(port, args);
  const stop = async () => {
    await daemon.stop();
    await removeInstanceDir(dir);
  };
  try {
    await waitUntilReady(daemon, 'redis-server', async () => (await command('PING')) === 'PONG');
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir, host: '127.0.0.1', port, socketPath, pid: daemon.pid, command, stop };
}

/** One RESP command on a new connection to 127.0.0.1:port. */
export function redisCommand(port: number, args: readonly string[], timeoutMs = 5_000): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buffer = Buffer.alloc(0);
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`redis ${args[0]}: no reply within ${timeoutMs} ms`));
    });
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      const parsed = parseResp(buffer, 0);
      if (parsed) {
        socket.end();
        resolve(parsed.value);
      }
    });
    const parts = [`*${args.length}\r\n`];
    for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
    socket.write(parts.join(''));
  });
}

/** Parses one RESP2 value at `offset`; undefined when the buffer holds only part of it. */
function parseResp(buffer: Buffer, offset: number): { value: RespValue; next: number } | undefined {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buffer[offset] ?? 0);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next };
    case '-':
      return { value: new RespError(line), next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next };
      if (buffer.length < next + length + 2) return undefined;
      return { value: buffer.toString('utf8', next, next + length), next: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items: RespValue[] = [];
      let position = next;
      for (let i = 0; i < count; i++) {
        const item = parseResp(buffer, position);
        if (!item) return undefined;
        items.push(item.value);
        position = item.next;
      }
      return { value: items, next: position };
    }
    default:
      throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
  }
}
