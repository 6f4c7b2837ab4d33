// The directory layout of one environment under the sites root (/srv/wpcp by default):
//
//   <root>/                 root:root            0755  the environment user's home
//     releases/<id>/        user:web-group       0750  code of each deploy
//     current -> releases/<id>                         relative symlink, switched atomically
//     shared/               user:web-group       0750  survives deploys
//       wp-config.php       user:user            0600  (linked from each release)
//       uploads/            user:web-group       0750  (linked as each release's wp-content/uploads)
//     backups/<id>/         root:root            0700  written by the agent only
//     tmp/                  user:user            0700  PHP upload/session/temp dir
//     logs/                 user:user            0750  PHP error log, nginx logs
//
// Other environments' users are neither the owner nor in the web group, so they cannot enter
// releases/ or shared/; nginx's workers (the web group, www-data on Debian) can read code and
// uploads but not wp-config.php; the site's own user cannot touch its backups.
import { chmod, chown, lstat, mkdir, readlink, rename, rm, rmdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { invalidArgument } from './errors.ts';
import { assertEnvironmentName } from './names.ts';

export interface EnvironmentLayout {
  root: string;
  releases: string;
  current: string;
  shared: string;
  sharedWpConfig: string;
  sharedUploads: string;
  backups: string;
  tmp: string;
  logs: string;
}

export interface LayoutOwner {
  /** The environment's Linux user and its primary group. */
  uid: number;
  gid: number;
  /** The group nginx's workers run as (www-data on Debian). */
  webGid: number;
}

const RELEASE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Characters allowed in the sites root: it ends up in nginx and PHP-FPM configuration. */
const SAFE_PATH = /^\/[A-Za-z0-9._/-]*$/;

export function assertSafeAbsolutePath(value: string, what: string): void {
  if (
    !SAFE_PATH.test(value) ||
    path.posix.normalize(value) !== value ||
    value.split('/').includes('..') ||
    (value.length > 1 && value.endsWith('/'))
  ) {
    throw invalidArgument(
      `${what} must be a normalised absolute path of letters, digits, '.', '_', '-' and '/': ${JSON.stringify(value)}`,
    );
  }
}

export function environmentLayout(sitesRoot: string, environment: string): EnvironmentLayout {
  assertSafeAbsolutePath(sitesRoot, 'sites root');
  assertEnvironmentName(environment);
  const root = path.join(sitesRoot, environment);
  const shared = path.join(root, 'shared');
  return {
    root,
    releases: path.join(root, 'releases'),
    current: path.join(root, 'current'),
    shared,
    sharedWpConfig: path.join(shared, 'wp-config.php'),
    sharedUploads: path.join(shared, 'uploads'),
    backups: path.join(root, 'backups'),
    tmp: path.join(root, 'tmp'),
    logs: path.join(root, 'logs'),
  };
}

export function assertReleaseId(id: string): void {
  if (!RELEASE_ID.test(id) || id.includes('..')) {
    throw invalidArgument(`release id must be 1-64 letters, digits, '.', '_' or '-': ${JSON.stringify(id)}`);
  }
}

export function releasePath(layout: EnvironmentLayout, id: string): string {
  assertReleaseId(id);
  return path.join(layout.releases, id);
}

async function ensureDir(dir: string, mode: number, uid: number, gid: number): Promise<void> {
  await mkdir(dir, { recursive: false }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const info = await lstat(dir);
  if (!info.isDirectory()) throw invalidArgument(`${dir} exists and is not a directory`);
  await chown(dir, uid, gid);
  await chmod(dir, mode);
}

/** Creates (or repairs the owners and modes of) the environment's directories. Idempotent. */
export async function createLayout(layout: EnvironmentLayout, owner: LayoutOwner): Promise<void> {
  const { uid, gid, webGid } = owner;
  await mkdir(path.dirname(layout.root), { recursive: true });
  await ensureDir(layout.root, 0o755, 0, 0);
  await ensureDir(layout.releases, 0o750, uid, webGid);
  await ensureDir(layout.shared, 0o750, uid, webGid);
  await ensureDir(layout.sharedUploads, 0o750, uid, webGid);
  await ensureDir(layout.backups, 0o700, 0, 0);
  await ensureDir(layout.tmp, 0o700, uid, gid);
  await ensureDir(layout.logs, 0o750, uid, gid);
}

/**
 * Links the shared files into a release: `wp-config.php -> ../../shared/wp-config.php` and
 * `wp-content/uploads -> ../../../shared/uploads` (relative, so a copied tree stays valid). An
 * empty uploads directory shipped in the release is replaced; a non-empty one is an error.
 */
export async function linkSharedIntoRelease(layout: EnvironmentLayout, id: string): Promise<void> {
  const release = releasePath(layout, id);
  await replaceWithSymlink(path.join(release, 'wp-config.php'), '../../shared/wp-config.php');
  await mkdir(path.join(release, 'wp-content'), { recursive: true });
  const uploads = path.join(release, 'wp-content', 'uploads');
  const existing = await lstat(uploads).catch(() => undefined);
  if (existing?.isDirectory()) {
    // rmdir fails on a non-empty directory: the release's own uploads are never thrown away.
    await rmdir(uploads).catch(() => {
      throw invalidArgument(`${uploads} is a non-empty directory; move its files to ${layout.sharedUploads}`);
    });
  }
  await replaceWithSymlink(uploads, '../../../shared/uploads');
}

async function replaceWithSymlink(linkPath: string, target: string): Promise<void> {
  const existing = await lstat(linkPath).catch(() => undefined);
  if (existing?.isSymbolicLink() && (await readlink(linkPath)) === target) return;
  if (existing && !existing.isSymbolicLink() && !existing.isFile()) {
    throw invalidArgument(`${linkPath} exists and is not a file or link`);
  }
  const temp = `${linkPath}.wpcp-link-${process.pid}-${Date.now()}`;
  await symlink(target, temp);
  await rename(temp, linkPath);
}

/** Points `current` at releases/<id> atomically (a new symlink renamed over the old one). */
export async function switchCurrent(layout: EnvironmentLayout, id: string): Promise<void> {
  const release = releasePath(layout, id);
  const info = await lstat(release).catch(() => undefined);
  if (!info?.isDirectory()) throw invalidArgument(`release ${id} does not exist in ${layout.releases}`);
  await replaceWithSymlink(layout.current, `releases/${id}`);
}

/** The release `current` points at, or undefined when there is none yet. */
export async function currentRelease(layout: EnvironmentLayout): Promise<string | undefined> {
  try {
    const target = await readlink(layout.current);
    const match = /^releases\/([^/]+)$/.exec(target);
    return match?.[1];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Removes the environment's files. With `keepBackups` (the default) backups/ stays and so does the
 * root directory holding it.
 */
export async function removeLayout(
  layout: EnvironmentLayout,
  options: { keepBackups?: boolean } = {},
): Promise<void> {
  const keepBackups = options.keepBackups ?? true;
  if (!keepBackups) {
    await rm(layout.root, { recursive: true, force: true });
    return;
  }
  for (const entry of [layout.current, layout.releases, layout.shared, layout.tmp, layout.logs]) {
    await rm(entry, { recursive: true, force: true });
  }
}
