import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applyConfigAtomically,
  type CheckResult,
  ConfigLock,
  commandCheck,
  writeFileAtomically,
} from './atomic-config.ts';

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wpcp-atomic-'));
  file = path.join(dir, 'site.conf');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A checker that accepts the file unless it contains "bad", and records what it saw. */
function fakeServer() {
  const seen: (string | null)[] = [];
  let reloads = 0;
  let failReload = false;
  return {
    seen,
    reloads: () => reloads,
    failNextReload: () => {
      failReload = true;
    },
    check: async (): Promise<CheckResult> => {
      const content = await readFile(file, 'utf8').catch(() => null);
      seen.push(content);
      return content?.includes('bad')
        ? { ok: false, output: 'line 1: bad directive' }
        : { ok: true, output: '' };
    },
    reload: async () => {
      if (failReload) {
        failReload = false;
        throw new Error('reload refused');
      }
      reloads++;
    },
  };
}

describe('applyConfigAtomically', () => {
  it('writes, checks and reloads a new file', async () => {
    const server = fakeServer();
    const result = await applyConfigAtomically({ path: file, content: 'good 1', ...server });
    expect(result).toEqual({ changed: true, previous: null });
    expect(await readFile(file, 'utf8')).toBe('good 1');
    expect(server.seen).toEqual(['good 1']);
    expect(server.reloads()).toBe(1);
    expect((await stat(file)).mode & 0o777).toBe(0o644);
  });

  it('does nothing when the content is unchanged', async () => {
    await writeFile(file, 'same');
    const server = fakeServer();
    expect(await applyConfigAtomically({ path: file, content: 'same', ...server })).toEqual({
      changed: false,
      previous: 'same',
    });
    expect(server.reloads()).toBe(0);
  });

  it('restores the previous content when the check fails, without reloading', async () => {
    await writeFile(file, 'good 1');
    const server = fakeServer();
    await expect(applyConfigAtomically({ path: file, content: 'bad 2', ...server })).rejects.toMatchObject({
      code: 'config_check_failed',
      message: expect.stringContaining('line 1: bad directive'),
    });
    expect(await readFile(file, 'utf8')).toBe('good 1');
    expect(server.reloads()).toBe(0);
    expect(await readdir(dir)).toEqual(['site.conf']);
  });

  it('removes a new file whose check fails', async () => {
    const server = fakeServer();
    await expect(applyConfigAtomically({ path: file, content: 'bad', ...server })).rejects.toThrow();
    expect(await readdir(dir)).toEqual([]);
  });

  it('removes a file (content null) and restores it when the check then fails', async () => {
    await writeFile(file, 'good');
    const server = fakeServer();
    expect((await applyConfigAtomically({ path: file, content: null, ...server })).changed).toBe(true);
    expect(await readdir(dir)).toEqual([]);

    await writeFile(file, 'good');
    const failing = {
      check: async () => ({ ok: false, output: 'needed by another file' }),
      reload: async () => {},
    };
    await expect(applyConfigAtomically({ path: file, content: null, ...failing })).rejects.toThrow(/needed/);
    expect(await readFile(file, 'utf8')).toBe('good');
  });

  it('rolls back and reloads the previous content when the reload fails', async () => {
    await writeFile(file, 'good 1');
    const server = fakeServer();
    server.failNextReload();
    await expect(applyConfigAtomically({ path: file, content: 'good 2', ...server })).rejects.toMatchObject({
      code: 'config_reload_failed',
      message: expect.stringContaining('restored and reloaded'),
    });
    expect(await readFile(file, 'utf8')).toBe('good 1');
    expect(server.reloads()).toBe(1);
  });

  it('treats a checker that cannot run as a failed check', async () => {
    const check = commandCheck({ file: '/nonexistent/checker', args: [] });
    await expect(
      applyConfigAtomically({
        path: file,
        content: 'x',
        check: async () => check(),
        reload: async () => {},
      }),
    ).rejects.toMatchObject({ code: 'config_check_failed' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('serialises changes that share a lock', async () => {
    const lock = new ConfigLock();
    const order: string[] = [];
    const slow = (name: string, ms: number) => ({
      check: async () => {
        order.push(`check ${name}`);
        await new Promise((resolve) => setTimeout(resolve, ms));
        return { ok: true, output: '' };
      },
      reload: async () => {
        order.push(`reload ${name}`);
      },
    });
    await Promise.all([
      applyConfigAtomically({ path: path.join(dir, 'a.conf'), content: 'a', lock, ...slow('a', 50) }),
      applyConfigAtomically({ path: path.join(dir, 'b.conf'), content: 'b', lock, ...slow('b', 1) }),
    ]);
    expect(order).toEqual(['check a', 'reload a', 'check b', 'reload b']);
  });
});

describe('writeFileAtomically', () => {
  it('replaces a file with the given mode and leaves no temp file', async () => {
    await writeFile(file, 'old');
    await writeFileAtomically(file, 'new', 0o600);
    expect(await readFile(file, 'utf8')).toBe('new');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['site.conf']);
  });
});
