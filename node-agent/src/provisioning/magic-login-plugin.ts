// The must-use plugin behind magic login (docs/security-and-secrets.md, "Magic login"), and the
// token files it consumes.
//
// The login URL is `<site_url>/wpcp-login/#<token>`: the token is in the fragment, which browsers
// never send, so it never reaches nginx's access log. GET /wpcp-login/ answers a tiny page whose
// script POSTs the fragment to the same path (POST bodies are not logged). The POST renames
// `<root>/shared/magic-login/<sha256(token)>.json` to a private name (rename() is atomic: of two
// concurrent requests exactly one succeeds), deletes it, checks the expiry, the request's Host and
// that the user is still an administrator, then sets WordPress's auth cookie and redirects to
// wp-admin. Anything else is a 410 "This login link has expired" page.
//
// The plugin finds the token directory from its own real path
// (`<root>/releases/<id>/wp-content/mu-plugins` → `<root>/shared/magic-login`), so the same file
// serves every environment and release.
import { chmod, chown, lstat, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { readIfExists, writeFileAtomically } from './atomic-config.ts';
import type { EnvironmentLayout } from './layout.ts';

export const MAGIC_LOGIN_PATH = '/wpcp-login/';
export const MAGIC_LOGIN_PLUGIN_FILE = 'wpcp-magic-login.php';

/** `<root>/shared/magic-login`: user:user 0700, outside the release root nginx serves. */
export function magicLoginDir(layout: EnvironmentLayout): string {
  return path.join(layout.shared, 'magic-login');
}

export function magicLoginPluginPath(layout: EnvironmentLayout): string {
  return path.join(layout.current, 'wp-content', 'mu-plugins', MAGIC_LOGIN_PLUGIN_FILE);
}

export const MAGIC_LOGIN_PLUGIN = `<?php
/**
 * Plugin Name: wpcp magic login
 * Description: One-time administrator login links issued by the wpcp control plane. Installed and kept up to date by the wpcp agent: do not edit.
 */

if (!defined('ABSPATH')) {
    exit;
}

function wpcp_magic_login_requested(): bool
{
    $path = parse_url((string) ($_SERVER['REQUEST_URI'] ?? ''), PHP_URL_PATH);
    return $path === '/wpcp-login/' || $path === '/wpcp-login';
}

if (wpcp_magic_login_requested()) {
    // After plugins, pluggable functions and roles are loaded; before any template or redirect.
    add_action('init', 'wpcp_magic_login_handle', 0);
}

function wpcp_magic_login_page(int $status, string $title, string $body): never
{
    nocache_headers();
    status_header($status);
    header('Content-Type: text/html; charset=utf-8');
    header('Referrer-Policy: no-referrer');
    header('X-Robots-Tag: noindex');
    echo '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">'
        . '<meta name="referrer" content="no-referrer"><title>' . $title . '</title></head><body>' . $body . '</body></html>';
    exit;
}

function wpcp_magic_login_expired(): never
{
    wpcp_magic_login_page(
        410,
        'This login link has expired',
        '<h1>This login link has expired</h1><p>A login link works once, for 60 seconds. Ask the control plane for a new one.</p>'
    );
}

function wpcp_magic_login_handle(): void
{
    $method = strtoupper((string) ($_SERVER['REQUEST_METHOD'] ?? 'GET'));
    if ($method === 'GET' || $method === 'HEAD') {
        // The token is in the URL's fragment, which the browser never sends: this page reads it and
        // POSTs it here (and drops it from the address bar and the history).
        $script = '(function(){var t=location.hash.slice(1);'
            . 'if(history.replaceState){history.replaceState(null,"",location.pathname);}'
            . 'if(!t){document.getElementById("m").textContent="This login link has expired";return;}'
            . 'var f=document.createElement("form");f.method="POST";f.action=location.pathname;'
            . 'var i=document.createElement("input");i.type="hidden";i.name="token";i.value=t;'
            . 'f.appendChild(i);document.body.appendChild(f);f.submit();})();';
        wpcp_magic_login_page(200, 'Logging in…', '<p id="m">Logging in…</p><script>' . $script . '</script>');
    }
    if ($method !== 'POST') {
        header('Allow: GET, POST');
        wpcp_magic_login_page(405, 'Method not allowed', '<h1>Method not allowed</h1>');
    }
    $token = isset($_POST['token']) ? (string) wp_unslash($_POST['token']) : '';
    if (!preg_match('/^[A-Za-z0-9_-]{22,128}$/', $token)) {
        wpcp_magic_login_expired();
    }
    $hash = hash('sha256', $token);
    $dir = dirname(__DIR__, 4) . '/shared/magic-login';
    $file = $dir . '/' . $hash . '.json';
    $claimed = $dir . '/.' . $hash . '.used-' . bin2hex(random_bytes(8));
    // The consume: rename() is atomic, so of two concurrent requests exactly one gets the file.
    if (!@rename($file, $claimed)) {
        wpcp_magic_login_expired();
    }
    $data = json_decode((string) @file_get_contents($claimed), true);
    @unlink($claimed);
    if (!is_array($data)) {
        wpcp_magic_login_expired();
    }
    if (microtime(true) * 1000 >= (float) ($data['expires_at_ms'] ?? 0)) {
        wpcp_magic_login_expired();
    }
    $host = strtolower((string) ($_SERVER['HTTP_HOST'] ?? ''));
    if (!hash_equals(strtolower((string) ($data['host'] ?? '')), $host)) {
        wpcp_magic_login_expired();
    }
    $user = get_user_by('id', (int) ($data['user_id'] ?? 0));
    if (!$user || !in_array('administrator', (array) $user->roles, true)) {
        wpcp_magic_login_expired();
    }
    wp_set_current_user($user->ID);
    wp_set_auth_cookie($user->ID, false, is_ssl());
    nocache_headers();
    wp_safe_redirect(admin_url());
    exit;
}
`;

export interface Owner {
  uid: number;
  gid: number;
}

async function ensureDir(dir: string, mode: number, owner: Owner): Promise<void> {
  await mkdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const info = await lstat(dir);
  if (!info.isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  if (info.uid !== owner.uid || info.gid !== owner.gid) await chown(dir, owner.uid, owner.gid);
  if ((info.mode & 0o777) !== mode) await chmod(dir, mode);
}

/**
 * Installs (or repairs) the must-use plugin in the current release and the token directory.
 * Idempotent: `changed` is false when both were already as they should be.
 */
export async function ensureMagicLoginPlugin(
  layout: EnvironmentLayout,
  owner: Owner,
): Promise<{ changed: boolean }> {
  let changed = false;
  const muPlugins = path.dirname(magicLoginPluginPath(layout));
  const before = await lstat(muPlugins).catch(() => undefined);
  if (!before) {
    await mkdir(muPlugins);
    await chown(muPlugins, owner.uid, owner.gid);
    await chmod(muPlugins, 0o755);
    changed = true;
  }
  const file = magicLoginPluginPath(layout);
  const info = await lstat(file).catch(() => undefined);
  if (
    !info?.isFile() ||
    info.uid !== owner.uid ||
    (info.mode & 0o777) !== 0o644 ||
    (await readIfExists(file)) !== MAGIC_LOGIN_PLUGIN
  ) {
    await writeFileAtomically(file, MAGIC_LOGIN_PLUGIN, 0o644, owner);
    changed = true;
  }
  const dir = magicLoginDir(layout);
  const dirInfo = await lstat(dir).catch(() => undefined);
  if (!dirInfo) changed = true;
  await ensureDir(dir, 0o700, owner);
  return { changed };
}

const TOKEN_FILE = /^[0-9a-f]{64}\.json$/;

/** Deletes token files past their expiry (best effort; they are useless then anyway). */
export async function removeExpiredTokens(layout: EnvironmentLayout, nowMs: number): Promise<number> {
  const dir = magicLoginDir(layout);
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const file = path.join(dir, name);
    if (!TOKEN_FILE.test(name)) {
      // A claimed file left by a request that died between rename and unlink.
      if (name.startsWith('.') && name.includes('.used-')) {
        await rm(file, { force: true });
        removed++;
      }
      continue;
    }
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as { expires_at_ms?: number };
      if (typeof data.expires_at_ms !== 'number' || data.expires_at_ms <= nowMs) {
        await rm(file, { force: true });
        removed++;
      }
    } catch {
      // Gone already (consumed), or unreadable: leave it to the next run.
    }
  }
  return removed;
}
