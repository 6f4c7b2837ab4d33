// Changing a configuration file that a server reads (an nginx server block, a PHP-FPM pool) so that
// a bad change never reaches the running server:
//
//   1. the new content is written to a temporary file in the same directory (its name does not end
//      in `.conf`, so no include glob picks it up), flushed, and renamed over the target: readers
//      see the old file or the new one, never half of one;
//   2. the checker runs (`nginx -t`, `php-fpm8.2 -t`) against the whole configuration;
//   3. if it fails, the previous content is put back the same way (or the file removed if there was
//      none) and `config_check_failed` is thrown with the checker's output; the server was never
//      reloaded, so it keeps serving every other site;
//   4. if it passes, the server is reloaded; if the reload fails, the previous content is put back,
//      checked and reloaded again, and `config_reload_failed` is thrown.
//
// Changes sharing a checker must not interleave (one change's check would see another's half-done
// state), so they take the same ConfigLock.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { RunResult } from '../exec/run.ts';
import { type Command, describeFailure, runCommand } from './command.ts';
import { ProvisioningError } from './errors.ts';

export interface CheckResult {
  ok: boolean;
  /** What the checker said (shown in the error on failure). */
  output: string;
}

export interface AtomicConfigChange {
  /** The file to write (or remove). */
  path: string;
  /** New content; null removes the file. */
  content: string | null;
  /** File mode of a written file. Default 0644. */
  mode?: number;
  /** Checks the configuration as a whole, with the new file in place. */
  check: () => Promise<CheckResult>;
  /** Makes the server load the configuration; throws on failure. */
  reload: () => Promise<void>;
  /** Serialises changes that share a checker. */
  lock?: ConfigLock;
}

export interface AtomicConfigResult {
  /** False when the file already had this content (nothing was checked or reloaded). */
  changed: boolean;
  /** The content before the change (null: there was no file). */
  previous: string | null;
}

/** A FIFO mutex: changes run one at a time, in the order they asked. */
export class ConfigLock {
  #tail: Promise<void> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

export async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Writes `content` to `file` atomically: temp file in the same directory (created exclusively, so
 * never through a planted symlink), owner and mode set on it, fsync, rename. Readers see the old
 * file or the new one, with its final owner and mode from the first moment.
 */
export async function writeFileAtomically(
  file: string,
  content: string,
  mode = 0o644,
  owner?: { uid: number; gid: number },
): Promise<void> {
  const temp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.wpcp-tmp-${randomBytes(6).toString('hex')}`,
  );
  const handle = await open(temp, 'wx', mode);
  try {
    try {
      await handle.writeFile(content, 'utf8');
      if (owner) await handle.chown(owner.uid, owner.gid);
      await handle.chmod(mode); // open()'s mode is filtered by the umask.
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  try {
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

async function putContent(file: string, content: string | null, mode: number): Promise<void> {
  if (content === null) await rm(file, { force: true });
  else await writeFileAtomically(file, content, mode);
}

export async function applyConfigAtomically(change: AtomicConfigChange): Promise<AtomicConfigResult> {
  const task = () => applyUnlocked(change);
  return change.lock ? change.lock.run(task) : task();
}

async function applyUnlocked(change: AtomicConfigChange): Promise<AtomicConfigResult> {
  const mode = change.mode ?? 0o644;
  const previous = await readIfExists(change.path);
  if (previous === change.content) return { changed: false, previous };

  await putContent(change.path, change.content, mode);

  let checked: CheckResult;
  try {
    checked = await change.check();
  } catch (err) {
    checked = { ok: false, output: `the checker failed to run: ${(err as Error).message}` };
  }
  if (!checked.ok) {
    await putContent(change.path, previous, mode);
    throw new ProvisioningError(
      'config_check_failed',
      `configuration check failed for ${change.path}; the previous version was restored: ${checked.output.trim()}`,
    );
  }

  try {
    await change.reload();
  } catch (err) {
    await putContent(change.path, previous, mode);
    let restored = 'the previous version was restored and reloaded';
    try {
      const again = await change.check();
      if (again.ok) await change.reload();
      else restored = `the previous version was restored but does not pass the check: ${again.output.trim()}`;
    } catch (rollbackErr) {
      restored = `the previous version was restored but reloading it failed: ${(rollbackErr as Error).message}`;
    }
    throw new ProvisioningError(
      'config_reload_failed',
      `reload failed after writing ${change.path} (${(err as Error).message}); ${restored}`,
      { cause: err },
    );
  }
  return { changed: true, previous };
}

function outputOf(result: RunResult): string {
  return `${result.stderr}${result.stdout}`.trim();
}

/** A checker that runs a command (e.g. `nginx -t`) through the sandbox: ok when it exits 0. */
export function commandCheck(command: Command, timeoutMs = 30_000): () => Promise<CheckResult> {
  return async () => {
    const result = await runCommand(command, { timeoutMs, maxOutputBytes: 64 * 1024 });
    return {
      ok: result.exitCode === 0,
      output:
        result.exitCode === 0
          ? outputOf(result)
          : `${command.file} ${describeFailure(result)}: ${outputOf(result)}`,
    };
  };
}

/** A reloader that runs a command (e.g. `nginx -s reload`): throws unless it exits 0. */
export function commandReload(command: Command, timeoutMs = 30_000): () => Promise<void> {
  return async () => {
    const result = await runCommand(command, { timeoutMs, maxOutputBytes: 64 * 1024 });
    if (result.exitCode !== 0) {
      throw new Error(`${command.file} ${describeFailure(result)}: ${outputOf(result)}`);
    }
  };
}
