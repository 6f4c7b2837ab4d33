// WordPress core files into a release directory of an environment, from the node's configured
// source:
//
// - a directory (e.g. an unpacked wordpress.org release, or Debian's /usr/share/wordpress): copied
//   as regular files, symlinks dereferenced (Debian's package links into /usr/share/php and
//   /usr/share/javascript), links that resolve nowhere left out, a top-level wp-config.php never
//   copied (the environment brings its own);
// - a tar archive (.tar, .tar.gz, .tgz, .tar.xz...): unpacked by tar(1) into a private directory,
//   then copied the same way, with symlinks followed only when they stay inside the archive;
// - nothing configured: `wp core download` as the environment's user.
//
// The copy is made in a private root-owned directory next to releases/ (`<root>/.wpcp-core-*`,
// 0700), owned by the environment's user file by file, and renamed into releases/<id> only when
// complete: a crash leaves a staging directory (removed by the next attempt), never half a release.
import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import {
  chmod,
  chown,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
} from 'node:fs/promises';
import path from 'node:path';
import type { RunOptions, RunResult } from '../exec/run.ts';
import { describeFailure } from './command.ts';
import { ProvisioningError } from './errors.ts';
import { type EnvironmentLayout, releasePath } from './layout.ts';
import { type WpCliSettings, wpCliError, wpCliInvocation } from './wp-cli.ts';

/** How core installation starts processes (the command context's exec: cancellation, logs). */
export type Exec = (options: Omit<RunOptions, 'signal' | 'onLine'>) => Promise<RunResult>;

export interface CoreInstallOptions {
  layout: EnvironmentLayout;
  releaseId: string;
  owner: { uid: number; gid: number };
  /** Directory or archive; '' for `wp core download`. */
  source: string;
  wp: WpCliSettings;
  exec: Exec;
  log: (line: string) => void;
  /** tar(1). */
  tar?: string;
}

const STAGING_PREFIX = '.wpcp-core-';
const MAX_DEPTH = 32;

/** `$wp_version` from wp-includes/version.php, or undefined when there is no WordPress there. */
export async function readWordPressVersion(dir: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'wp-includes', 'version.php'), 'utf8');
  } catch {
    return undefined;
  }
  return /\$wp_version\s*=\s*'([0-9A-Za-z.+-]{1,40})'/.exec(text)?.[1];
}

/** Removes staging directories a crashed attempt left behind. */
export async function removeCoreStaging(layout: EnvironmentLayout): Promise<void> {
  for (const dir of [layout.root, layout.releases]) {
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const name of entries) {
      if (name.startsWith(STAGING_PREFIX)) await rm(path.join(dir, name), { recursive: true, force: true });
    }
  }
}

function coreFailed(message: string): ProvisioningError {
  return new ProvisioningError('core_install_failed', message);
}

/** Installs core into releases/<id> (replacing an incomplete one there) and returns its version. */
export async function installCore(options: CoreInstallOptions): Promise<string> {
  const { layout, releaseId, owner } = options;
  const target = releasePath(layout, releaseId);
  await removeCoreStaging(layout);
  const suffix = randomBytes(6).toString('hex');
  let staged: string;
  if (options.source === '') {
    staged = await downloadCore(options, path.join(layout.releases, `${STAGING_PREFIX}${suffix}`));
  } else {
    const info = await stat(options.source).catch(() => undefined);
    if (!info) throw coreFailed(`the WordPress core source ${options.source} does not exist`);
    staged = path.join(layout.root, `${STAGING_PREFIX}${suffix}`);
    await mkdir(staged, { mode: 0o700 });
    if (info.isDirectory()) {
      await copyCore(options.source, staged, owner, undefined, options.log);
    } else {
      await unpackCore(options, info.isFile() ? options.source : '', staged, suffix);
    }
    await chown(staged, owner.uid, owner.gid);
    await chmod(staged, 0o755);
  }
  const version = await readWordPressVersion(staged);
  if (!version) {
    await rm(staged, { recursive: true, force: true });
    throw coreFailed(
      `the WordPress core source ${options.source || '(wp core download)'} holds no wp-includes/version.php`,
    );
  }
  await rm(target, { recursive: true, force: true });
  await rename(staged, target);
  return version;
}

async function downloadCore(options: CoreInstallOptions, staged: string): Promise<string> {
  // The user writes it: a directory of its own inside releases/ (which it owns).
  await mkdir(staged, { mode: 0o755 });
  await chown(staged, options.owner.uid, options.owner.gid);
  const wp = wpCliInvocation(options.wp, options.layout, ['core', 'download'], { path: staged });
  const result = await options.exec({
    ...wp,
    uid: options.owner.uid,
    gid: options.owner.gid,
    timeoutMs: 600_000,
    maxOutputBytes: 256 * 1024,
  });
  if (result.exitCode !== 0) {
    await rm(staged, { recursive: true, force: true });
    throw wpCliError(result, 'wp core download');
  }
  return staged;
}

async function unpackCore(options: CoreInstallOptions, archive: string, staged: string, suffix: string) {
  if (archive === '')
    throw coreFailed(`the WordPress core source ${options.source} is neither a directory nor a file`);
  const extract = path.join(options.layout.root, `${STAGING_PREFIX}${suffix}-archive`);
  await mkdir(extract, { mode: 0o700 });
  try {
    const tar = options.tar ?? '/usr/bin/tar';
    const result = await options.exec({
      file: tar,
      args: ['-x', '-f', archive, '-C', extract, '--no-same-owner', '--no-same-permissions'],
      timeoutMs: 300_000,
      maxOutputBytes: 64 * 1024,
    });
    if (result.exitCode !== 0) {
      throw coreFailed(
        `tar could not unpack ${archive}: ${describeFailure(result)}: ${result.stderr.trim().slice(0, 1_000)}`,
      );
    }
    // wordpress.org's archives hold one top-level `wordpress/` directory.
    let root = extract;
    if (!(await readWordPressVersion(extract))) {
      const entries = await readdir(extract, { withFileTypes: true });
      const only = entries.length === 1 && entries[0]?.isDirectory() ? entries[0].name : undefined;
      if (only) root = path.join(extract, only);
    }
    await copyCore(root, staged, options.owner, extract, options.log);
  } finally {
    await rm(extract, { recursive: true, force: true });
  }
}

/**
 * Copies `from` into the existing directory `to` as regular files and directories owned by
 * `owner` (directories 0755, files 0644, or 0755 when executable), following symlinks. With
 * `confineTo`, a link resolving outside that directory is left out.
 */
export async function copyCore(
  from: string,
  to: string,
  owner: { uid: number; gid: number },
  confineTo: string | undefined,
  log: (line: string) => void,
): Promise<{ files: number; skipped: string[] }> {
  const skipped: string[] = [];
  let files = 0;
  const confine = confineTo === undefined ? undefined : await realpath(confineTo);
  const walk = async (dir: string, dest: string, relative: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH)
      throw coreFailed(`the WordPress core source is nested deeper than ${MAX_DEPTH} levels`);
    const entries: Dirent[] = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const rel = relative ? `${relative}/${entry.name}` : entry.name;
      if (rel === 'wp-config.php') continue;
      let source = path.join(dir, entry.name);
      if (entry.isSymbolicLink()) {
        const real = await realpath(source).catch(() => undefined);
        if (!real || (confine !== undefined && !real.startsWith(`${confine}/`))) {
          skipped.push(rel);
          continue;
        }
        source = real;
      }
      const info = await stat(source).catch(() => undefined);
      const target = path.join(dest, entry.name);
      if (info?.isDirectory()) {
        await mkdir(target, { mode: 0o755 });
        await chown(target, owner.uid, owner.gid);
        await chmod(target, 0o755);
        await walk(source, target, rel, depth + 1);
      } else if (info?.isFile()) {
        await copyFile(source, target);
        await chown(target, owner.uid, owner.gid);
        await chmod(target, info.mode & 0o111 ? 0o755 : 0o644);
        files += 1;
      } else {
        skipped.push(rel);
      }
    }
  };
  const top = await lstat(from);
  if (!top.isDirectory() && !top.isSymbolicLink()) throw coreFailed(`${from} is not a directory`);
  await walk(await realpath(from), to, '', 0);
  log(
    `copied ${files} WordPress core files${skipped.length > 0 ? `; left out ${skipped.length} links that resolve nowhere usable: ${skipped.slice(0, 10).join(', ')}` : ''}`,
  );
  return { files, skipped };
}
