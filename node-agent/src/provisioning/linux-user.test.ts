import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_LINUX_USER_TOOLS,
  deleteLinuxUser,
  type LinuxUserTools,
  lookupGroupId,
  lookupLinuxUser,
  useraddArgs,
} from './linux-user.ts';

let dir: string;
let tools: LinuxUserTools;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wpcp-users-'));
  tools = {
    ...DEFAULT_LINUX_USER_TOOLS,
    // Programs that must never run in these tests.
    useradd: '/nonexistent/useradd',
    userdel: '/nonexistent/userdel',
    groupdel: '/nonexistent/groupdel',
    passwdFile: path.join(dir, 'passwd'),
    groupFile: path.join(dir, 'group'),
  };
  await writeFile(
    tools.passwdFile,
    [
      'root:x:0:0:root:/root:/bin/bash',
      'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin',
      'wp_abc123def456:x:998:997:wpcp environment shop--prod:/srv/wpcp/shop--prod:/usr/sbin/nologin',
      '',
    ].join('\n'),
  );
  await writeFile(tools.groupFile, 'root:x:0:\nwww-data:x:33:\nwp_abc123def456:x:997:\n');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('linux users', () => {
  it('builds a useradd command for a system user with its own group and no login', () => {
    expect(
      useraddArgs({ name: 'wp_abc123def456', home: '/srv/wpcp/shop--prod', environment: 'shop--prod' }),
    ).toEqual([
      '--system',
      '--user-group',
      '--no-create-home',
      '--home-dir',
      '/srv/wpcp/shop--prod',
      '--shell',
      '/usr/sbin/nologin',
      '--comment',
      'wpcp environment shop--prod',
      'wp_abc123def456',
    ]);
  });

  it('refuses names and homes useradd would misread', () => {
    for (const name of ['', 'Root', '-o', 'a b', 'a:b', 'a'.repeat(33), '1abc']) {
      expect(() => useraddArgs({ name, home: '/srv/wpcp/x--yy', environment: 'x--yy' }), name).toThrow();
    }
    expect(() => useraddArgs({ name: 'wp_a', home: '/srv/wpcp/x:y', environment: 'x--yy' })).toThrow();
    expect(() => useraddArgs({ name: 'wp_a', home: '/srv/wpcp/x', environment: 'x\n' })).toThrow();
  });

  it('reads accounts and groups from the passwd and group files', async () => {
    expect(await lookupLinuxUser('wp_abc123def456', tools)).toEqual({
      name: 'wp_abc123def456',
      uid: 998,
      gid: 997,
      comment: 'wpcp environment shop--prod',
      home: '/srv/wpcp/shop--prod',
      shell: '/usr/sbin/nologin',
    });
    expect(await lookupLinuxUser('nobody_here', tools)).toBeUndefined();
    expect(await lookupGroupId('www-data', tools)).toBe(33);
    expect(await lookupGroupId('missing', tools)).toBeUndefined();
  });

  it('refuses to delete an account wpcp did not make, and ignores a missing one', async () => {
    await expect(deleteLinuxUser('www-data', tools)).rejects.toThrow(/not an account made by wpcp/);
    await expect(deleteLinuxUser('nobody_here', tools)).resolves.toBeUndefined();
  });
});
