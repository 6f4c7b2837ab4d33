// The execution sandbox: every process the agent starts goes through runProcess.
//
// Guarantees:
// - No shell, ever: `file` + an argv array are handed to spawn as they are.
// - The child never inherits the agent's environment (which may hold secrets): it gets the explicit
//   `env` plus a minimal PATH and LANG, and `/` as its working directory unless told otherwise.
// - Output is captured up to `maxOutputBytes` per stream; the rest is read and dropped, so a chatty
//   child can neither exhaust the agent's memory nor block on a full pipe.
// - The child runs in its own process group (spawned detached, i.e. setsid). On timeout or
//   cancellation the whole group gets SIGTERM, then SIGKILL after a grace period; when the leader
//   exits, anything it left behind in its group is killed too, so no orphans survive a command.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export const MINIMAL_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_LANG = 'C.UTF-8';
export const DEFAULT_KILL_GRACE_MS = 5_000;
/** After the leader exits and its group is killed, how long to wait for the pipes to close. */
const POST_EXIT_DRAIN_MS = 1_000;
/** setTimeout's ceiling; longer timeouts would fire immediately. */
const MAX_TIMER_MS = 2_147_483_647;
const MAX_ID = 2_147_483_647;

export type OutputStream = 'stdout' | 'stderr';

export interface RunOptions {
  /** Absolute normalised path, or a bare command name looked up in the child's PATH. */
  file: string;
  args: readonly string[];
  /** Run as this user; `gid` is then required (a child must never keep root's group). */
  uid?: number;
  gid?: number;
  /** Absolute working directory; defaults to `/`. */
  cwd?: string;
  /** The child's whole environment besides PATH and LANG (which it may override). */
  env?: Readonly<Record<string, string>>;
  /**
   * Written to the child's stdin, which is then closed. Without it stdin is /dev/null. A Readable
   * is piped in (e.g. another process's output through `stdoutTo`, the way a shell's `|` would);
   * if the child stops reading, the piping stops and the error is ignored.
   */
  stdin?: string | Uint8Array | Readable;
  /**
   * Instead of being captured, the child's stdout is piped into this stream, which is ended when
   * the child's stdout closes (also when the child failed: check the result before trusting what
   * the stream received). `stdout` in the result is then empty and no stdout lines are reported.
   */
  stdoutTo?: Writable;
  timeoutMs: number;
  /** Cap per stream; bytes past it are dropped and `truncated` is reported. */
  maxOutputBytes: number;
  /** Delay between SIGTERM and SIGKILL on timeout or cancellation. */
  killGraceMs?: number;
  signal?: AbortSignal;
  /**
   * Called for every complete line (and a final unterminated one) of the captured output, without
   * its line break. Lines past the output cap are not reported. Exceptions thrown here are ignored:
   * a failing log sink must not break the command.
   */
  onLine?: (stream: OutputStream, line: string) => void;
}

export interface RunResult {
  /** Exit code, or null when the process was ended by a signal (or never started). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  cancelled: boolean;
  durationMs: number;
}

export type ExecErrorCode = 'invalid_argument' | 'spawn_failed';

export class ExecError extends Error {
  readonly code: ExecErrorCode;

  constructor(code: ExecErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ExecError';
    this.code = code;
  }
}

const BARE_COMMAND = /^[A-Za-z0-9_+][A-Za-z0-9._+-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function invalid(message: string): ExecError {
  return new ExecError('invalid_argument', message);
}

function isNonNegativeInt(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}

function validateFile(file: unknown): void {
  if (typeof file !== 'string' || file.length === 0) throw invalid('file must be a non-empty string');
  if (file.includes('\0')) throw invalid('file must not contain NUL bytes');
  if (file.includes('/')) {
    if (!path.isAbsolute(file) || path.posix.normalize(file) !== file || file.endsWith('/')) {
      throw invalid(
        `file must be an absolute, normalised path or a bare command name: ${JSON.stringify(file)}`,
      );
    }
  } else if (!BARE_COMMAND.test(file)) {
    throw invalid(`file is not a valid command name: ${JSON.stringify(file)}`);
  }
}

function validate(options: RunOptions): void {
  validateFile(options.file);
  if (!Array.isArray(options.args)) throw invalid('args must be an array of strings');
  options.args.forEach((arg: unknown, index) => {
    if (typeof arg !== 'string') throw invalid(`args[${index}] must be a string`);
    if (arg.includes('\0')) throw invalid(`args[${index}] must not contain NUL bytes`);
  });
  if (options.uid !== undefined && !isNonNegativeInt(options.uid, MAX_ID)) {
    throw invalid('uid must be a non-negative integer');
  }
  if (options.gid !== undefined && !isNonNegativeInt(options.gid, MAX_ID)) {
    throw invalid('gid must be a non-negative integer');
  }
  if (options.uid !== undefined && options.gid === undefined) {
    throw invalid('gid is required when uid is set');
  }
  if (options.cwd !== undefined) {
    if (typeof options.cwd !== 'string' || !path.isAbsolute(options.cwd) || options.cwd.includes('\0')) {
      throw invalid('cwd must be an absolute path');
    }
  }
  if (options.env !== undefined) {
    for (const [name, value] of Object.entries(options.env)) {
      if (!ENV_NAME.test(name)) throw invalid(`invalid environment variable name: ${JSON.stringify(name)}`);
      if (typeof value !== 'string' || value.includes('\0')) {
        throw invalid(`environment variable ${name} must be a string without NUL bytes`);
      }
    }
  }
  if (
    options.stdin !== undefined &&
    typeof options.stdin !== 'string' &&
    !(options.stdin instanceof Uint8Array) &&
    !(options.stdin instanceof Readable)
  ) {
    throw invalid('stdin must be a string, a Uint8Array or a Readable');
  }
  if (options.stdoutTo !== undefined && typeof options.stdoutTo.write !== 'function') {
    throw invalid('stdoutTo must be a Writable');
  }
  if (!isNonNegativeInt(options.timeoutMs, MAX_TIMER_MS) || options.timeoutMs === 0) {
    throw invalid(`timeoutMs must be an integer between 1 and ${MAX_TIMER_MS}`);
  }
  if (!isNonNegativeInt(options.maxOutputBytes, Number.MAX_SAFE_INTEGER)) {
    throw invalid('maxOutputBytes must be a non-negative integer');
  }
  if (options.killGraceMs !== undefined && !isNonNegativeInt(options.killGraceMs, MAX_TIMER_MS)) {
    throw invalid('killGraceMs must be a non-negative integer');
  }
}

function buildEnv(explicit: Readonly<Record<string, string>> | undefined): Record<string, string> {
  // A fresh object: nothing from process.env is ever copied in.
  return { PATH: MINIMAL_PATH, LANG: DEFAULT_LANG, ...explicit };
}

/** Keeps up to `cap` bytes of one output stream and splits the kept bytes into lines. */
class StreamCapture {
  readonly #stream: OutputStream;
  readonly #cap: number;
  readonly #onLine: RunOptions['onLine'];
  readonly #chunks: Buffer[] = [];
  readonly #decoder = new StringDecoder('utf8');
  #kept = 0;
  #pendingLine = '';
  truncated = false;

  constructor(stream: OutputStream, cap: number, onLine: RunOptions['onLine']) {
    this.#stream = stream;
    this.#cap = cap;
    this.#onLine = onLine;
  }

  push(chunk: Buffer): void {
    const room = this.#cap - this.#kept;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    // Copy a partial chunk so the dropped remainder can be garbage-collected.
    const part = chunk.length > room ? Buffer.from(chunk.subarray(0, room)) : chunk;
    this.#chunks.push(part);
    this.#kept += part.length;
    if (this.#onLine) this.#feed(this.#decoder.write(part));
  }

  finish(): string {
    if (this.#onLine) {
      this.#feed(this.#decoder.end());
      if (this.#pendingLine.length > 0) this.#emit(this.#pendingLine);
      this.#pendingLine = '';
    }
    return Buffer.concat(this.#chunks).toString('utf8');
  }

  #feed(text: string): void {
    if (text.length === 0) return;
    const parts = (this.#pendingLine + text).split('\n');
    this.#pendingLine = parts.pop() ?? '';
    for (const line of parts) this.#emit(line.endsWith('\r') ? line.slice(0, -1) : line);
  }

  #emit(line: string): void {
    try {
      this.#onLine?.(this.#stream, line);
    } catch {
      // A failing log sink must not break the command; the output is still captured.
    }
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    // A negative pid addresses the whole process group the detached child leads.
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone, which is what we want. EPERM cannot happen as root, and
    // throwing from a timer or an event handler would bring the whole agent down.
  }
}

export function runProcess(options: RunOptions): Promise<RunResult> {
  try {
    validate(options);
  } catch (err) {
    return Promise.reject(err);
  }
  if (options.signal?.aborted) {
    return Promise.resolve({
      exitCode: null,
      signal: null,
      stdout: '',
      stderr: '',
      truncated: false,
      timedOut: false,
      cancelled: true,
      durationMs: 0,
    });
  }

  return new Promise<RunResult>((resolve, reject) => {
    const startedAt = performance.now();
    const killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    const stdoutCapture = new StreamCapture('stdout', options.maxOutputBytes, options.onLine);
    const stderrCapture = new StreamCapture('stderr', options.maxOutputBytes, options.onLine);

    let child: ChildProcess;
    try {
      child = spawn(options.file, [...options.args], {
        cwd: options.cwd ?? '/',
        env: buildEnv(options.env),
        uid: options.uid,
        gid: options.gid,
        detached: true,
        stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        shell: false,
      });
    } catch (err) {
      reject(new ExecError('spawn_failed', `cannot start ${options.file}: ${String(err)}`, { cause: err }));
      return;
    }

    let settled = false;
    let exited = false;
    let terminating = false;
    let timedOut = false;
    let cancelled = false;
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    let timeoutTimer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;

    const cleanup = (): void => {
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      clearTimeout(drainTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };

    const finish = (): void => {
      if (settled) return;
      settled = true;
      cleanup();
      // If a descendant escaped the group and still holds a pipe, stop reading from it.
      child.stdout?.destroy();
      child.stderr?.destroy();
      // A destroyed stdout never ends the stream it was piped to: end it, so its reader sees EOF.
      if (options.stdoutTo && !options.stdoutTo.writableEnded) options.stdoutTo.end();
      resolve({
        exitCode,
        signal: exitSignal,
        stdout: stdoutCapture.finish(),
        stderr: stderrCapture.finish(),
        truncated: stdoutCapture.truncated || stderrCapture.truncated,
        timedOut,
        cancelled,
        durationMs: Math.round(performance.now() - startedAt),
      });
    };

    const terminate = (): void => {
      const pid = child.pid;
      if (terminating || exited || pid === undefined) return;
      terminating = true;
      signalGroup(pid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(pid, 'SIGKILL'), killGraceMs);
    };

    function onAbort(): void {
      if (exited || terminating) return;
      cancelled = true;
      terminate();
    }

    child.on('error', (err) => {
      if (settled) return;
      if (child.pid === undefined) {
        settled = true;
        cleanup();
        reject(new ExecError('spawn_failed', `cannot start ${options.file}: ${err.message}`, { cause: err }));
      }
      // Other errors (e.g. on a stdio pipe) end in 'exit'/'close' as usual.
    });

    child.on('exit', (code, signal) => {
      exited = true;
      exitCode = code;
      exitSignal = signal;
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      const pid = child.pid;
      // Kill whatever the leader left behind in its group (background jobs holding our pipes).
      if (pid !== undefined) signalGroup(pid, 'SIGKILL');
      drainTimer = setTimeout(finish, POST_EXIT_DRAIN_MS);
    });

    child.on('close', (code, signal) => {
      if (!exited) {
        exitCode = code;
        exitSignal = signal;
      }
      finish();
    });

    if (options.stdoutTo) child.stdout?.pipe(options.stdoutTo);
    else child.stdout?.on('data', (chunk: Buffer) => stdoutCapture.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderrCapture.push(chunk));

    if (child.pid === undefined) return; // spawn failed; 'error' follows.

    if (child.stdin) {
      // The child may exit without reading its input (EPIPE): that is its business, not ours.
      child.stdin.on('error', () => {});
      const input = options.stdin;
      if (input instanceof Readable) {
        const stdin = child.stdin;
        input.on('error', () => stdin.destroy());
        stdin.on('error', () => input.unpipe(stdin));
        input.pipe(stdin);
      } else {
        child.stdin.end(input);
      }
    }

    timeoutTimer = setTimeout(() => {
      if (exited || terminating) return;
      timedOut = true;
      terminate();
    }, options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
