import { lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyCore, readWordPressVersion } from './wordpress-core.ts';

let dir: string;
const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wpcp-core-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function source(): Promise<string> {
  const src = path.join(dir, 'src');
  await mkdir(path.join(src, 'wp-includes'), { recursive: true });
  await writeFile(path.join(src, 'wp-includes', 'version.php'), "<?php\n$wp_version = '6.1.9';\n");
  await writeFile(path.join(src, 'index.php'), '<?php // index\n');
  await mkdir(path.join(dir, 'outside', 'lib'), { recursive: true });
  await writeFile(path.join(dir, 'outside', 'lib', 'getid3.php'), '<?php // getid3\n');
  await symlink(path.join(dir, 'outside', 'lib'), path.join(src, 'wp-includes', 'ID3'));
  await symlink('/nonexistent/htaccess', path.join(src, '.htaccess'));
  await symlink('/etc/wordpress/wp-config.php', path.join(src, 'wp-config.php'));
  return src;
}

describe('copyCore', () => {
  it('copies regular files, dereferencing links and leaving out dangling ones and wp-config.php', async () => {
    const src = await source();
    const to = path.join(dir, 'to');
    await mkdir(to);
    const lines: string[] = [];
    const copied = await copyCore(src, to, owner, undefined, (line) => lines.push(line));
    expect(copied).toEqual({ files: 3, skipped: ['.htaccess'] });
    expect(await readWordPressVersion(to)).toBe('6.1.9');
    const id3 = await lstat(path.join(to, 'wp-includes', 'ID3'));
    expect(id3.isDirectory()).toBe(true);
    expect(await readFile(path.join(to, 'wp-includes', 'ID3', 'getid3.php'), 'utf8')).toContain('getid3');
    await expect(lstat(path.join(to, 'wp-config.php'))).rejects.toThrow();
    expect((await stat(path.join(to, 'index.php'))).mode & 0o777).toBe(0o644);
    expect((await stat(path.join(to, 'wp-includes'))).mode & 0o777).toBe(0o755);
    expect(lines[0]).toContain('copied 3 WordPress core files');
  });

  it('with a confinement, leaves out links that point outside it (archives)', async () => {
    const src = await source();
    const to = path.join(dir, 'to');
    await mkdir(to);
    const copied = await copyCore(src, to, owner, src, () => {});
    expect(copied.skipped.sort()).toEqual(['.htaccess', 'wp-includes/ID3']);
  });

  it('reads no version where there is no WordPress', async () => {
    expect(await readWordPressVersion(dir)).toBeUndefined();
  });
});
