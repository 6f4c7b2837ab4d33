import { lstat, mkdir, mkdtemp, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  assertSafeAbsolutePath,
  createLayout,
  currentRelease,
  environmentLayout,
  linkSharedIntoRelease,
  releasePath,
  removeLayout,
  switchCurrent,
} from './layout.ts';

let sitesRoot: string;
const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;
const owner = { uid, gid, webGid: gid };

beforeEach(async () => {
  sitesRoot = await mkdtemp(path.join(tmpdir(), 'wpcp-layout-'));
});
afterEach(async () => {
  await rm(sitesRoot, { recursive: true, force: true });
});

async function mode(p: string): Promise<number> {
  return (await stat(p)).mode & 0o777;
}

describe('environment layout', () => {
  it('places everything under <sites root>/<site>--<env>', () => {
    const layout = environmentLayout('/srv/wpcp', 'shop--prod');
    expect(layout).toEqual({
      root: '/srv/wpcp/shop--prod',
      releases: '/srv/wpcp/shop--prod/releases',
      current: '/srv/wpcp/shop--prod/current',
      shared: '/srv/wpcp/shop--prod/shared',
      sharedWpConfig: '/srv/wpcp/shop--prod/shared/wp-config.php',
      sharedUploads: '/srv/wpcp/shop--prod/shared/uploads',
      backups: '/srv/wpcp/shop--prod/backups',
      tmp: '/srv/wpcp/shop--prod/tmp',
      logs: '/srv/wpcp/shop--prod/logs',
    });
  });

  it('refuses unsafe roots, names and release ids', () => {
    for (const bad of ['srv/wpcp', '/srv/../etc', '/srv/wp cp', '/srv/wpcp/', '/srv//wpcp', '/srv/wpcp;']) {
      expect(() => environmentLayout(bad, 'shop--prod'), bad).toThrow();
    }
    expect(() => environmentLayout('/srv/wpcp', '../etc')).toThrow();
    const layout = environmentLayout('/srv/wpcp', 'shop--prod');
    for (const bad of ['', '..', '../x', 'a/b', '.hidden', 'a'.repeat(65), 'a b']) {
      expect(() => releasePath(layout, bad), bad).toThrow(/release id/);
    }
    expect(() => assertSafeAbsolutePath('/', 'x')).not.toThrow();
  });

  it('creates the directories with their modes, idempotently', async () => {
    const layout = environmentLayout(sitesRoot, 'shop--prod');
    await createLayout(layout, owner);
    await createLayout(layout, owner);
    expect(await mode(layout.root)).toBe(0o755);
    expect(await mode(layout.releases)).toBe(0o750);
    expect(await mode(layout.shared)).toBe(0o750);
    expect(await mode(layout.sharedUploads)).toBe(0o750);
    expect(await mode(layout.backups)).toBe(0o700);
    expect(await mode(layout.tmp)).toBe(0o700);
    expect(await mode(layout.logs)).toBe(0o750);
  });

  it('links shared files into a release and switches current atomically', async () => {
    const layout = environmentLayout(sitesRoot, 'shop--prod');
    await createLayout(layout, owner);
    expect(await currentRelease(layout)).toBeUndefined();
    for (const id of ['r1', 'r2']) {
      await mkdir(path.join(releasePath(layout, id), 'wp-content', 'uploads'), { recursive: true });
      await linkSharedIntoRelease(layout, id);
    }
    await writeFile(layout.sharedWpConfig, '<?php // config\n');
    const r1 = releasePath(layout, 'r1');
    expect(await readlink(path.join(r1, 'wp-config.php'))).toBe('../../shared/wp-config.php');
    expect(await readlink(path.join(r1, 'wp-content', 'uploads'))).toBe('../../../shared/uploads');
    expect((await stat(path.join(r1, 'wp-config.php'))).isFile()).toBe(true);

    await switchCurrent(layout, 'r1');
    expect(await currentRelease(layout)).toBe('r1');
    await switchCurrent(layout, 'r2');
    expect(await currentRelease(layout)).toBe('r2');
    expect(await readlink(layout.current)).toBe('releases/r2');
    await expect(switchCurrent(layout, 'missing')).rejects.toThrow(/does not exist/);
    expect(await currentRelease(layout)).toBe('r2');
  });

  it("keeps a release's non-empty uploads directory", async () => {
    const layout = environmentLayout(sitesRoot, 'shop--prod');
    await createLayout(layout, owner);
    const uploads = path.join(releasePath(layout, 'r1'), 'wp-content', 'uploads');
    await mkdir(uploads, { recursive: true });
    await writeFile(path.join(uploads, 'photo.jpg'), 'x');
    await expect(linkSharedIntoRelease(layout, 'r1')).rejects.toThrow(/non-empty/);
    expect((await lstat(uploads)).isDirectory()).toBe(true);
  });

  it('removes everything but backups unless told to purge them', async () => {
    const layout = environmentLayout(sitesRoot, 'shop--prod');
    await createLayout(layout, owner);
    await writeFile(path.join(layout.backups, 'db.sql.gz'), 'x');
    await removeLayout(layout);
    expect(await stat(path.join(layout.backups, 'db.sql.gz')).then(() => true)).toBe(true);
    expect(await stat(layout.releases).catch(() => undefined)).toBeUndefined();
    await removeLayout(layout, { keepBackups: false });
    expect(await stat(layout.root).catch(() => undefined)).toBeUndefined();
  });
});
