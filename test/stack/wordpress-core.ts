// WordPress core files for the stack tests, from Debian's packages (wordpress.org is unreachable
// here, and installing the `wordpress` package would pull in Apache).
//
// `apt-get download` fetches the .deb files of WordPress, its default theme and the three packages
// Debian's WordPress symlinks into (getID3, underscore.js, cropper.js); `dpkg-deb -x` unpacks them
// into one private root; then usr/share/wordpress is copied to `<cache>/core` as regular files:
// every symlink is resolved inside that root first (an absolute target such as
// /usr/share/php/getid3/getid3.php means <root>/usr/share/php/...), then on the host (the CA
// bundle in /etc/ssl/certs), and left out when it resolves nowhere (.htaccess -> /etc/wordpress).
// Debian's wp-config.php (a symlink to /etc/wordpress) is always left out. The result is cached
// across runs; delete the cache directory to fetch again.
import { existsSync } from 'node:fs';
import {
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCollect } from './exec.ts';

export const WORDPRESS_PACKAGES = [
  'wordpress',
  'wordpress-theme-twentytwentythree',
  'php-getid3',
  'libjs-underscore',
  'libjs-cropper',
] as const;

export interface WordPressCore {
  /** A directory with a complete WordPress core (no wp-config.php), all regular files. */
  dir: string;
  /** `$wp_version` from wp-includes/version.php. */
  version: string;
  /** Symlinks of the package that resolved nowhere and were left out (relative paths). */
  skipped: string[];
}

const MARKER = '.wpcp-core.json';

export function defaultCoreCacheDir(): string {
  return process.env.WPCP_WP_CORE_CACHE ?? path.join(tmpdir(), 'wpcp-test-cache', 'wordpress-core');
}

export async function fetchWordPressCore(options: { cacheDir?: string } = {}): Promise<WordPressCore> {
  const cacheDir = options.cacheDir ?? defaultCoreCacheDir();
  const coreDir = path.join(cacheDir, 'core');
  const cached = await readMarker(coreDir);
  if (cached) return cached;

  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(path.join(cacheDir, 'fetch-'));
  try {
    const download = await runCollect('apt-get', ['download', ...WORDPRESS_PACKAGES], {
      cwd: work,
      timeoutMs: 300_000,
    });
    if (download.code !== 0) {
      throw new Error(
        `apt-get download ${WORDPRESS_PACKAGES.join(' ')} failed (${download.code}); ` +
          `run \`apt-get update\` if the package lists are missing:\n${download.output}`,
      );
    }
    const root = path.join(work, 'root');
    await mkdir(root);
    const debs = (await readdir(work)).filter((name) => name.endsWith('.deb')).sort();
    for (const deb of debs) {
      const unpack = await runCollect('dpkg-deb', ['-x', path.join(work, deb), root]);
      if (unpack.code !== 0) throw new Error(`dpkg-deb -x ${deb} failed:\n${unpack.output}`);
    }
    const source = path.join(root, 'usr/share/wordpress');
    const staged = path.join(work, 'core');
    const skipped: string[] = [];
    await copyDereferenced(root, source, staged, '', skipped);
    const version = await readWpVersion(staged);
    const core: WordPressCore = { dir: coreDir, version, skipped };
    await writeFile(
      path.join(staged, MARKER),
      `${JSON.stringify({ version, skipped, packages: debs }, null, 2)}\n`,
    );
    try {
      await rename(staged, coreDir);
    } catch (err) {
      // Another run finished first: use its copy.
      if (
        (err as NodeJS.ErrnoException).code !== 'ENOTEMPTY' &&
        (err as NodeJS.ErrnoException).code !== 'EEXIST'
      ) {
        throw err;
      }
      const other = await readMarker(coreDir);
      if (!other) throw err;
      return other;
    }
    return core;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function readMarker(coreDir: string): Promise<WordPressCore | undefined> {
  try {
    const marker = JSON.parse(await readFile(path.join(coreDir, MARKER), 'utf8')) as {
      version: string;
      skipped: string[];
    };
    if (!existsSync(path.join(coreDir, 'wp-includes/version.php'))) return undefined;
    return { dir: coreDir, version: marker.version, skipped: marker.skipped };
  } catch {
    return undefined;
  }
}

export async function readWpVersion(dir: string): Promise<string> {
  const text = await readFile(path.join(dir, 'wp-includes/version.php'), 'utf8');
  const match = /\$wp_version\s*=\s*'([^']+)'/.exec(text);
  if (!match?.[1]) throw new Error(`no $wp_version in ${dir}/wp-includes/version.php`);
  return match[1];
}

/**
 * Copies `from` (a directory inside `root`) to `to`, following symlinks. An absolute link target is
 * looked up inside `root` first, then on the host; a relative one inside `root` (relative to the
 * link), then on the host the same way.
 */
async function copyDereferenced(
  root: string,
  from: string,
  to: string,
  relative: string,
  skipped: string[],
): Promise<void> {
  await mkdir(to, { recursive: true, mode: 0o755 });
  for (const name of (await readdir(from)).sort()) {
    const rel = relative ? `${relative}/${name}` : name;
    // Debian's wp-config.php points into /etc/wordpress: a site brings its own.
    if (rel === 'wp-config.php') continue;
    const source = path.join(from, name);
    const target = path.join(to, name);
    const real = await resolveInRoot(root, source);
    if (!real) {
      skipped.push(rel);
      continue;
    }
    const info = await stat(real);
    if (info.isDirectory()) {
      await copyDereferenced(root, real, target, rel, skipped);
    } else if (info.isFile()) {
      await copyFile(real, target);
    } else {
      skipped.push(rel);
    }
  }
}

/** The path a (possibly symlinked) entry of the unpacked root resolves to, or undefined. */
async function resolveInRoot(root: string, entry: string, depth = 0): Promise<string | undefined> {
  if (depth > 20) return undefined;
  const info = await lstat(entry).catch(() => undefined);
  if (!info) return undefined;
  if (!info.isSymbolicLink()) return entry;
  const link = await readlink(entry);
  // Where the link points, as a path on the target system (relative to the entry's location there).
  const onSystem = path.isAbsolute(link)
    ? link
    : path.resolve('/', path.relative(root, path.dirname(entry)), link);
  const inRoot = path.join(root, onSystem);
  if (await lstat(inRoot).catch(() => undefined)) return resolveInRoot(root, inRoot, depth + 1);
  if (existsSync(onSystem)) return onSystem; // On the host (read only): e.g. the CA bundle.
  return undefined;
}
