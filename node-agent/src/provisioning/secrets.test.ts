import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  databaseSecretPath,
  readDatabaseSecret,
  removeDatabaseSecret,
  writeDatabaseSecret,
} from './secrets.ts';

let stateDir: string;
beforeEach(async () => {
  stateDir = await mkdtemp(path.join(tmpdir(), 'wpcp-secrets-'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

describe('database secrets', () => {
  it('keeps the password in a private file of the state directory, until removed', async () => {
    expect(await readDatabaseSecret(stateDir, 'wp_abc')).toBeUndefined();
    await writeDatabaseSecret(stateDir, {
      database: 'wp_abc',
      user: 'wp_abc',
      password: 'secret-value-123456',
    });
    expect(await readDatabaseSecret(stateDir, 'wp_abc')).toEqual({
      database: 'wp_abc',
      user: 'wp_abc',
      password: 'secret-value-123456',
    });
    const file = databaseSecretPath(stateDir, 'wp_abc');
    expect(file).toBe(path.join(stateDir, 'secrets', 'database-wp_abc.json'));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    await removeDatabaseSecret(stateDir, 'wp_abc');
    await removeDatabaseSecret(stateDir, 'wp_abc');
    expect(await readDatabaseSecret(stateDir, 'wp_abc')).toBeUndefined();
  });

  it('refuses names that are not database user names', () => {
    expect(() => databaseSecretPath(stateDir, '../../etc/passwd')).toThrow();
  });
});
