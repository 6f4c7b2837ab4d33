// Node figures sent with every heartbeat: load, memory, disk of the state directory's filesystem,
// and the agent version. Cheap enough to collect every few seconds (one small file read, one statfs).
import { readFileSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

export interface NodeStats {
  agentVersion: string;
  cpuCount: number;
  load1: number;
  load5: number;
  load15: number;
  memoryTotalBytes: number;
  /** Memory available for new work without swapping (MemAvailable), or free memory as a fallback. */
  memoryAvailableBytes: number;
  diskTotalBytes: number;
  /** Space usable by unprivileged users (df's "Avail"), which is what the sites can use. */
  diskFreeBytes: number;
}

export interface CollectStatsOptions {
  /** The agent state directory; the disk figures are those of its filesystem. */
  stateDir: string;
  /** Injectable for tests. */
  meminfoPath?: string;
}

const packageJson = z.object({ version: z.string().min(1) });
let cachedVersion: string | undefined;

/** The version in node-agent/package.json, read once. */
export function agentVersion(): string {
  cachedVersion ??= packageJson.parse(
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')),
  ).version;
  return cachedVersion;
}

/** Byte figures from the text of /proc/meminfo (values there are in KiB). */
export function parseMeminfo(text: string): { totalBytes?: number; availableBytes?: number } {
  const figures: { totalBytes?: number; availableBytes?: number } = {};
  for (const line of text.split('\n')) {
    const match = /^(MemTotal|MemAvailable):\s+(\d+)\s*kB\s*$/.exec(line);
    if (!match) continue;
    const bytes = Number(match[2]) * 1024;
    if (match[1] === 'MemTotal') figures.totalBytes = bytes;
    else figures.availableBytes = bytes;
  }
  return figures;
}

async function readMemory(meminfoPath: string): Promise<{ total: number; available: number }> {
  let figures: ReturnType<typeof parseMeminfo> = {};
  try {
    figures = parseMeminfo(await readFile(meminfoPath, 'utf8'));
  } catch {
    // No /proc (or an old kernel without MemAvailable): fall back to what libuv reports.
  }
  return {
    total: figures.totalBytes ?? os.totalmem(),
    available: figures.availableBytes ?? os.freemem(),
  };
}

/** statfs of `dir`, or of its closest existing ancestor when it does not exist yet. */
async function readDisk(dir: string): Promise<{ total: number; free: number }> {
  let current = path.resolve(dir);
  for (;;) {
    try {
      const fsStats = await statfs(current);
      return { total: fsStats.blocks * fsStats.bsize, free: fsStats.bavail * fsStats.bsize };
    } catch (err) {
      const parent = path.dirname(current);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === current) throw err;
      current = parent;
    }
  }
}

export async function collectStats(options: CollectStatsOptions): Promise<NodeStats> {
  const [load1 = 0, load5 = 0, load15 = 0] = os.loadavg();
  const [memory, disk] = await Promise.all([
    readMemory(options.meminfoPath ?? '/proc/meminfo'),
    readDisk(options.stateDir),
  ]);
  return {
    agentVersion: agentVersion(),
    cpuCount: os.availableParallelism(),
    load1,
    load5,
    load15,
    memoryTotalBytes: memory.total,
    memoryAvailableBytes: Math.min(memory.available, memory.total),
    diskTotalBytes: disk.total,
    diskFreeBytes: disk.free,
  };
}
