import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveMasterKey } from './master-key.ts';
import { SecretBox } from './secret-box.ts';

describe('SecretBox', () => {
  it('seals and opens, with a fresh nonce each time', () => {
    const box = new SecretBox(randomBytes(32));
    const a = box.seal('ca private key');
    const b = box.seal('ca private key');
    expect(a).not.toBe(b);
    expect(a).not.toContain('ca private key');
    expect(box.open(a)).toBe('ca private key');
  });

  it('refuses a wrong key and tampered data with a clear message', () => {
    const sealed = new SecretBox(randomBytes(32)).seal('secret');
    expect(() => new SecretBox(randomBytes(32)).open(sealed)).toThrow(/WPCP_MASTER_KEY/);
    const box = new SecretBox(randomBytes(32));
    const parts = box.seal('secret').split('.');
    parts[3] = Buffer.from('tampered').toString('base64url');
    expect(() => box.open(parts.join('.'))).toThrow(/WPCP_MASTER_KEY/);
  });
});

describe('resolveMasterKey', () => {
  it('generates a 0600 key file once and reuses it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wpcp-key-'));
    try {
      const first = await resolveMasterKey(undefined, dir);
      expect(first.generatedFile).toBe(path.join(dir, 'master-key'));
      expect((await stat(path.join(dir, 'master-key'))).mode & 0o777).toBe(0o600);
      const second = await resolveMasterKey(undefined, dir);
      expect(second.generatedFile).toBeUndefined();
      expect(second.key.equals(first.key)).toBe(true);
      expect((await readFile(path.join(dir, 'master-key'), 'utf8')).trim()).toBe(
        first.key.toString('base64'),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('prefers WPCP_MASTER_KEY', async () => {
    const key = randomBytes(32);
    const resolved = await resolveMasterKey(key.toString('base64'), '/nonexistent');
    expect(resolved.key.equals(key)).toBe(true);
    expect(resolved.source).toBe('environment');
  });
});
