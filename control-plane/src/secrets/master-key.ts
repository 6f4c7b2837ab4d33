import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface MasterKey {
  key: Buffer;
  /** Set when the key was generated on this start (single-host mode): the banner says where. */
  generatedFile?: string;
  source: 'environment' | 'file';
}

/**
 * WPCP_MASTER_KEY when set; otherwise the key kept in `<dataDir>/master-key` (0600), generated on
 * first start. Replicas sharing a database must all be given the same WPCP_MASTER_KEY.
 */
export async function resolveMasterKey(configured: string | undefined, dataDir: string): Promise<MasterKey> {
  if (configured) return { key: Buffer.from(configured, 'base64'), source: 'environment' };
  const file = path.join(dataDir, 'master-key');
  try {
    const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte base64 key`);
    return { key, source: 'file' };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = randomBytes(32);
  await writeFile(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  return { key, generatedFile: file, source: 'file' };
}
