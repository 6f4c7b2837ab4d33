import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface RunningProcess {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout match of `pattern`, or rejects when the process exits first. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Writes one line to the process's standard input. */
  send(line: string): void;
  /** Resolves with the exit code once the process has exited (null when killed by a signal). */
  exited(): Promise<number | null>;
  /** Sends a signal and waits for the exit; returns the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Starts a Node.js process of this repository (TypeScript run by Node's type stripping). */
export function startNodeProcess(
  script: string,
  args: string[],
  env: Record<string, string>,
): RunningProcess {
  const child = spawn(process.execPath, [path.join(repoRoot, script), ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    err += chunk;
  });
  const exited = once(child, 'exit');
  return {
    child,
    send: (line) => {
      child.stdin?.write(`${line}\n`);
    },
    exited: async () => ((await exited) as [number | null])[0],
    stdout: () => out,
    stderr: () => err,
    waitForOutput: (pattern, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(out);
          if (match) {
            cleanup();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `no output matching ${pattern} within ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err}`,
            ),
          );
        }, timeoutMs);
        const onExit = (code: number | null) => {
          cleanup();
          reject(
            new Error(
              `process exited (${code}) before printing ${pattern}; stdout:\n${out}\nstderr:\n${err}`,
            ),
          );
        };
        const cleanup = () => {
          clearTimeout(timer);
          child.stdout?.off('data', check);
          child.off('exit', onExit);
        };
        child.stdout?.on('data', check);
        child.once('exit', onExit);
        check();
      }),
    stop: async (signal = 'SIGTERM', timeoutMs = 30_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const [code] = (await exited) as [number | null];
      clearTimeout(timer);
      return code;
    },
  };
}
