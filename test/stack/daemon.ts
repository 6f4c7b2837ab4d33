// Long-running server processes for the stack harness: started in their own process group with
// output in a log file, waited on until they answer, and stopped with their whole group so that no
// worker (nginx workers, PHP-FPM children) outlives a test. A process-exit hook SIGKILLs whatever a
// crashed test left running, so a failing suite does not leave daemons on the machine.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: nothing left in the group.
  }
}

/** Process ids whose process group is `pgid` (read from /proc; empty when none is left). */
export function processesInGroup(pgid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const fields = readStatFields(Number(entry));
    // After "pid (comm)": state ppid pgrp ... Zombies are dead already (PID 1 in a container may
    // never reap an orphan's), so they do not count.
    if (fields && Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X')
      found.push(Number(entry));
  }
  return found;
}

/** Direct children of `pid`. */
export function childProcesses(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const fields = readStatFields(Number(entry));
    if (fields && Number(fields[1]) === pid && fields[0] !== 'Z' && fields[0] !== 'X')
      found.push(Number(entry));
  }
  return found;
}

function readStatFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: split after the last ')'.
    return stat
      .slice(stat.lastIndexOf(')') + 2)
      .trim()
      .split(' ');
  } catch {
    return undefined; // The process went away while we looked.
  }
}

export interface DaemonOptions {
  file: string;
  args: readonly string[];
  /** stdout and stderr are appended here. */
  logFile: string;
  cwd?: string;
  env?: Record<string, string>;
}

export interface Daemon {
  readonly pid: number;
  readonly logFile: string;
  /** Exit code, or null while it runs or when it was ended by a signal. */
  exitCode(): number | null;
  isRunning(): boolean;
  /** Resolves when the process has exited (with its code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM to the whole group, SIGKILL after `graceMs`, then waits until the group is empty. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnDaemon(options: DaemonOptions): Daemon {
  installExitHook();
  const fd = openSync(options.logFile, 'a');
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(options.file, [...options.args], {
      cwd: options.cwd ?? '/',
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        LANG: 'C.UTF-8',
        ...options.env,
      },
      detached: true,
      stdio: ['ignore', fd, fd],
      shell: false,
    });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(`cannot start ${options.file}`);
  }
  liveGroups.add(pid);
  child.unref();
  let running = true;
  let code: number | null = null;
  const exited = once(child, 'exit').then(([exitCode, signal]) => {
    running = false;
    code = exitCode as number | null;
    return { code: exitCode as number | null, signal: signal as NodeJS.Signals | null };
  });

  return {
    pid,
    logFile: options.logFile,
    exited,
    exitCode: () => code,
    isRunning: () => running,
    async stop(graceMs = 10_000) {
      if (running) {
        killGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // The leader is gone; anything it left in its group goes too.
      for (let i = 0; i < 100 && processesInGroup(pid).length > 0; i++) {
        killGroup(pid, i === 0 ? 'SIGTERM' : 'SIGKILL');
        await sleep(50);
      }
      liveGroups.delete(pid);
    },
  };
}

/** The end of a log file, for error messages. */
export async function logTail(file: string, lines = 30): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `probe` until it returns true. Fails when the daemon exits first or the time runs out,
 * with the end of the daemon's log in the message.
 */
export async function waitUntilReady(
  daemon: Daemon,
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  while (Date.now() < deadline) {
    if (!daemon.isRunning()) {
      throw new Error(
        `${what} exited (code ${daemon.exitCode()}) before it was ready; log:\n${await logTail(daemon.logFile)}`,
      );
    }
    if (await probe().catch(() => false)) return;
    await sleep(delay);
    delay = Math.min(delay * 2, 200);
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms; log:\n${await logTail(daemon.logFile)}`);
}

/**
 * A fresh directory for one instance. World-traversable (0755) so that the unprivileged users the
 * daemons run their workers as (www-data, pool users) can reach sockets and files inside it.
 */
export async function makeInstanceDir(prefix: string, parent?: string): Promise<string> {
  const dir = await mkdtemp(path.join(parent ?? tmpdir(), `wpcp-${prefix}-`));
  chmodSync(dir, 0o755);
  return dir;
}

/** Removes an instance directory unless WPCP_STACK_KEEP=1 (for looking at logs after a failure). */
export async function removeInstanceDir(dir: string): Promise<void> {
  if (process.env.WPCP_STACK_KEEP === '1') return;
  await rm(dir, { recursive: true, force: true });
}

/** True while `pid` is a live process (zombies are not). */
export function isAlive(pid: number): boolean {
  const fields = readStatFields(pid);
  return fields !== undefined && fields[0] !== 'Z' && fields[0] !== 'X';
}
