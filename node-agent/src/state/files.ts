// Small, durable file operations for the agent's private state directory. Every write is atomic: a
// temporary file in the same directory (created 0600, exclusive), fsync, rename over the target,
// fsync of the directory. A reader therefore sees the old content or the new one, never a mix, even
// after a power cut.
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
const TEMP_SUFFIX = '.tmp';

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The temporary name used while `name` is being written (ignored and cleaned up by readers). */
export function isTempFileName(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TEMP_SUFFIX);
}

/**
 * Write `data` to `dir/name` atomically and durably, mode 0600. The directory fsync is left to the
 * caller when `syncDir` is false (to batch several renames behind one fsync).
 */
export async function writeFileAtomic(
  dir: string,
  name: string,
  data: string,
  options: { syncDir?: boolean } = {},
): Promise<void> {
  const target = path.join(dir, name);
  const temp = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  const handle = await open(temp, 'wx', PRIVATE_FILE_MODE);
  try {
    try {
      await handle.writeFile(data, 'utf8');
      // open()'s mode is filtered by the umask: make sure it is exactly 0600.
      await handle.chmod(PRIVATE_FILE_MODE);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
  if (options.syncDir ?? true) await fsyncDir(dir);
}

/**
 * Create `dir` (and its parents) if needed and make it 0700. Refuses a symbolic link or a
 * non-directory: the state directory holds the node's private key.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const info = await lstat(dir);
  if (!info.isDirectory()) throw new Error(`${dir} is not a directory`);
  // mkdir's mode is filtered by the umask and ignored for an existing directory: enforce it.
  await chmod(dir, PRIVATE_DIR_MODE);
}

/** Whether `file` exists (any type). */
export async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
