import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** CPU and memory of processes, read from /proc (Linux only). */

let clockTicks: number | undefined;

/** Clock ticks per second of the utime/stime fields (`getconf CLK_TCK`, almost always 100). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2_000 }).trim());
    } catch {
      clockTicks = 100;
    }
    if (!Number.isFinite(clockTicks) || clockTicks <= 0) clockTicks = 100;
  }
  return clockTicks;
}

export interface ProcSample {
  pid: number;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
  rssKb: number;
  threads: number;
}

function parseStat(text: string): { ppid: number; cpuTicks: number; childrenTicks: number } {
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime/stime fields 14/15, cutime/cstime 16/17.
  return {
    ppid: Number(fields[1]),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
    childrenTicks: Number(fields[13]) + Number(fields[14]),
  };
}

/** One sample of a process, or undefined once it is gone. */
export function sampleProcess(pid: number): ProcSample | undefined {
  try {
    const { cpuTicks } = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0);
    const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    return { pid, cpuTicks, rssKb, threads };
  } catch {
    return undefined;
  }
}

/** The process and its direct children (PostgreSQL: the postmaster and its backends). */
export function processTree(rootPid: number): number[] {
  const pids = [rootPid];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (parseStat(readFileSync(`/proc/${entry}/stat`, 'utf8')).ppid === rootPid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * CPU ticks of a process and all its direct children, including children that exited (the
 * parent's cutime/cstime, once it has waited for them): PostgreSQL backends come and go with the
 * connection pools, and their time must not vanish from a window.
 */
export function treeCpuTicks(rootPid: number): number {
  let ticks = 0;
  try {
    const root = parseStat(readFileSync(`/proc/${rootPid}/stat`, 'utf8'));
    ticks += root.cpuTicks + root.childrenTicks;
  } catch {
    return 0;
  }
  for (const pid of processTree(rootPid).slice(1)) {
    try {
      ticks += parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).cpuTicks;
    } catch {
      // exited meanwhile: counted in the root's children time once reaped
    }
  }
  return ticks;
}

/** Summed sample of a group of processes (RSS of PostgreSQL backends double-counts shared buffers). */
export function sampleGroup(pids: number[]): { cpuTicks: number; rssKb: number; alive: number } {
  let cpuTicks = 0;
  let rssKb = 0;
  let alive = 0;
  for (const pid of pids) {
    const sample = sampleProcess(pid);
    if (!sample) continue;
    alive += 1;
    cpuTicks += sample.cpuTicks;
    rssKb += sample.rssKb;
  }
  return { cpuTicks, rssKb, alive };
}

/** Whether a process with this pid exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Open file descriptors of a process, or undefined when they cannot be listed. */
export function openFds(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** Busy and total clock ticks of the whole machine (all cores), from the first line of /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already counted in user).
    const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** Soft and hard limits of open files of a process, from /proc/<pid>/limits. */
export function nofileLimits(pid: number): { soft: number; hard: number } | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(
      readFileSync(`/proc/${pid}/limits`, 'utf8'),
    );
    if (!line) return undefined;
    const value = (v: string | undefined) => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
    return { soft: value(line[1]), hard: value(line[2]) };
  } catch {
    return undefined;
  }
}

/**
 * Raises the open-files limit of a running process to `wanted` with prlimit(1) when its soft limit
 * is lower (above the hard limit only root with CAP_SYS_RESOURCE may). Returns what was done, for
 * the report; `needed` is the least the run can work with.
 */
export function ensureNofile(pid: number, wanted: number, needed: number): string | undefined {
  const limits = nofileLimits(pid);
  if (!limits || limits.soft >= wanted) return undefined;
  const hard = Math.max(wanted, Number.isFinite(limits.hard) ? limits.hard : wanted);
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${wanted}:${hard}`], {
      timeout: 5_000,
      stdio: 'ignore',
    });
    return `raised nofile of pid ${pid} from ${limits.soft}:${limits.hard} to ${wanted}:${hard} (prlimit)`;
  } catch {
    const verdict =
      limits.soft >= needed
        ? `enough for this run, ${limits.soft - needed + 100} to spare`
        : `too low for this run: expect EMFILE beyond ~${limits.soft - 100} streams`;
    return `prlimit could not raise nofile of pid ${pid} above ${limits.soft}:${limits.hard} (${verdict})`;
  }
}
