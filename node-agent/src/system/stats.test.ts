import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentVersion, collectStats, type NodeStats, parseMeminfo } from './stats.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wpcp-stats-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function expectSane(stats: NodeStats): void {
  for (const value of [stats.load1, stats.load5, stats.load15]) {
    expect(Number.isFinite(value)).toBe(true);
    expect(value).toBeGreaterThanOrEqual(0);
  }
  expect(stats.cpuCount).toBeGreaterThanOrEqual(1);
  expect(stats.memoryTotalBytes).toBeGreaterThan(16 * 1024 * 1024);
  expect(stats.memoryAvailableBytes).toBeGreaterThan(0);
  expect(stats.memoryAvailableBytes).toBeLessThanOrEqual(stats.memoryTotalBytes);
  expect(stats.diskTotalBytes).toBeGreaterThan(0);
  expect(stats.diskFreeBytes).toBeGreaterThanOrEqual(0);
  expect(stats.diskFreeBytes).toBeLessThanOrEqual(stats.diskTotalBytes);
  for (const [name, value] of Object.entries(stats)) {
    if (typeof value === 'number') expect(Number.isFinite(value), name).toBe(true);
  }
  expect(Number.isInteger(stats.diskTotalBytes) && Number.isInteger(stats.memoryTotalBytes)).toBe(true);
}

describe('collectStats', () => {
  it('returns sane figures for this machine', async () => {
    const stats = await collectStats({ stateDir: dir });
    expectSane(stats);
    // Cross-check against the OS: same order of magnitude as what libuv reports.
    expect(stats.memoryTotalBytes).toBeGreaterThan(os.totalmem() / 2);
    expect(stats.memoryTotalBytes).toBeLessThan(os.totalmem() * 2);
  });

  it('reads MemAvailable from the meminfo file', async () => {
    const meminfoPath = path.join(dir, 'meminfo');
    await writeFile(
      meminfoPath,
      'MemTotal:       4000000 kB\nMemFree:  100 kB\nMemAvailable:   3000000 kB\n',
    );
    const stats = await collectStats({ stateDir: dir, meminfoPath });
    expect(stats.memoryTotalBytes).toBe(4_000_000 * 1024);
    expect(stats.memoryAvailableBytes).toBe(3_000_000 * 1024);
  });

  it('falls back to os figures without a meminfo file', async () => {
    const stats = await collectStats({ stateDir: dir, meminfoPath: path.join(dir, 'missing') });
    expectSane(stats);
    expect(stats.memoryTotalBytes).toBe(os.totalmem());
  });

  it('measures the closest existing ancestor of a state dir that does not exist yet', async () => {
    const stats = await collectStats({ stateDir: path.join(dir, 'not', 'yet') });
    expectSane(stats);
  });

  it('reports the version from package.json', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(agentVersion()).toBe(pkg.version);
    expect(agentVersion()).toMatch(/^\d+\.\d+\.\d+/);
    expect((await collectStats({ stateDir: dir })).agentVersion).toBe(pkg.version);
  });
});

describe('parseMeminfo', () => {
  it('converts KiB to bytes and ignores other lines', () => {
    expect(parseMeminfo('MemTotal:  2048 kB\nSwapTotal: 99 kB\nMemAvailable:  1024 kB\n')).toEqual({
      totalBytes: 2048 * 1024,
      availableBytes: 1024 * 1024,
    });
  });

  it('leaves out figures an old kernel does not provide', () => {
    expect(parseMeminfo('MemTotal:  2048 kB\nMemFree:  1000 kB\n')).toEqual({ totalBytes: 2048 * 1024 });
    expect(parseMeminfo('')).toEqual({});
  });
});
