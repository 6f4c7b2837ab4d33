// The nginx server block of one environment: its hostnames, the `current` release as document
// root, PHP through FastCGI to the environment's own pool socket.
//
// Hostnames arrive validated by the shared validator (lowercase, punycode, RFC 1123), but this
// renderer checks every value again against a narrow pattern and refuses anything nginx could read
// as syntax (whitespace, `;`, `{`, `}`, `#`, quotes, `$`, a leading `~` that makes a regex, `*`
// wildcards, ...): the file it writes is configuration that nginx trusts.
import { invalidArgument } from './errors.ts';
import { assertSafeAbsolutePath } from './layout.ts';

export interface ListenAddress {
  /** IPv4 address, bracketed IPv6 address, or undefined for all addresses. */
  address?: string;
  port: number;
}

export interface ServerBlockOptions {
  /** Environment name (`<site>--<env>`), for the header comment. */
  name: string;
  /** The primary hostname first; at least one. */
  hostnames: readonly string[];
  listen: readonly ListenAddress[];
  /** Document root: the environment's `current` symlink. */
  root: string;
  /** Absolute path of the environment's PHP-FPM socket. */
  fastcgiSocket: string;
  /** Request body limit; should match the pool's post_max_size (e.g. `64M`). */
  clientMaxBodySize: string;
  /** FastCGI read timeout in seconds: the pool's max_execution_time plus a margin. */
  fastcgiReadTimeoutSeconds: number;
  accessLog?: string;
  errorLog?: string;
  /**
   * The port in the site's URLs (WPCP_NODE_HTTP_PORT) when it is not the scheme's default. Debian's
   * fastcgi_params passes HTTP_HOST as `$host`, without the port (a security update of nginx
   * 1.22); WordPress would then redirect every request to the URL with the port, forever. With a
   * non-default port the block passes `$host:<port>` instead.
   */
  publicPort?: number;
  publicScheme?: 'http' | 'https';
  /** The environment's FastCGI page cache (absent: nothing of it is rendered). */
  fastcgiCache?: FastcgiCacheOptions;
}

export interface FastcgiCacheOptions {
  /** keys_zone name: letters, digits and `_`. */
  zone: string;
  /** The zone's own directory (nginx creates and owns it). */
  path: string;
}

/** The keys_zone name of an environment's page cache (`shop--prod` → `wpcp_shop__prod`). */
export function fastcgiCacheZone(name: string): string {
  return `wpcp_${name.replace(/-/g, '_')}`;
}

const ZONE = /^[a-z0-9_]{1,80}$/;

/**
 * Requests that are never answered from the cache nor stored in it: anything but GET/HEAD, any
 * query string, WordPress's dynamic paths, WooCommerce's per-visitor pages, and visitors with a
 * logged-in, comment-author, password-protected-post or WooCommerce cart/session cookie.
 */
export const CACHE_SKIP_URI =
  '^/(?:wp-admin/|wp-login\\.php|xmlrpc\\.php|wp-json/|wp-cron\\.php|wp-signup\\.php|wp-activate\\.php|wp-trackback\\.php)|/feed/|sitemap(?:_index)?\\.xml|/(?:cart|checkout|my-account)(?:/|$)';
export const CACHE_SKIP_COOKIE =
  'wordpress_logged_in_|wordpress_sec_|wordpress_no_cache|comment_author|wp-postpass_|woocommerce_items_in_cart|woocommerce_cart_hash|woocommerce_recently_viewed|wp_woocommerce_session_|woocommerce_';

function cacheHttpLines(cache: FastcgiCacheOptions): string[] {
  return [
    `# FastCGI page cache of this environment (its own zone and directory).`,
    `fastcgi_cache_path ${cache.path} levels=1:2 keys_zone=${cache.zone}:10m max_size=256m inactive=60m use_temp_path=off;`,
    '',
  ];
}

function cacheServerLines(): string[] {
  return [
    '',
    '    # Page cache skip rules: POST, query strings, dynamic paths, logged-in/comment/password/',
    '    # WooCommerce cookies.',
    '    set $wpcp_skip_cache 0;',
    '    if ($request_method !~ ^(?:GET|HEAD)$) {',
    '        set $wpcp_skip_cache 1;',
    '    }',
    '    if ($query_string != "") {',
    '        set $wpcp_skip_cache 1;',
    '    }',
    `    if ($request_uri ~* "${CACHE_SKIP_URI}") {`,
    '        set $wpcp_skip_cache 1;',
    '    }',
    `    if ($http_cookie ~* "${CACHE_SKIP_COOKIE}") {`,
    '        set $wpcp_skip_cache 1;',
    '    }',
  ];
}

function cacheLocationLines(cache: FastcgiCacheOptions): string[] {
  return [
    `        fastcgi_cache ${cache.zone};`,
    '        fastcgi_cache_key "$scheme$request_method$host$request_uri";',
    '        fastcgi_cache_methods GET HEAD;',
    '        fastcgi_cache_valid 200 301 302 10m;',
    '        fastcgi_cache_valid 404 1m;',
    '        fastcgi_cache_lock on;',
    '        fastcgi_cache_use_stale error timeout updating http_500 http_503;',
    '        fastcgi_cache_bypass $wpcp_skip_cache;',
    '        fastcgi_no_cache $wpcp_skip_cache;',
    '        # HIT, MISS, BYPASS, EXPIRED, ...: the cache state is observable.',
    '        add_header X-Cache $upstream_cache_status always;',
  ];
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);
const IPV4 =
  /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;
const IPV6_BRACKETED = /^\[[0-9a-f:]{2,39}\]$/;
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const SIZE = /^[1-9][0-9]{0,5}[kmgKMG]?$/;

/** A hostname nginx can take as a literal server_name (no regex, no wildcard, no syntax). */
export function isNginxSafeHostname(hostname: string): boolean {
  return HOSTNAME.test(hostname);
}

function check(condition: boolean, message: string): void {
  if (!condition) throw invalidArgument(message);
}

function renderListen(listen: ListenAddress): string {
  check(
    Number.isInteger(listen.port) && listen.port >= 1 && listen.port <= 65_535,
    `listen port must be an integer from 1 to 65535: ${listen.port}`,
  );
  if (listen.address === undefined) return String(listen.port);
  check(
    IPV4.test(listen.address) || IPV6_BRACKETED.test(listen.address),
    `listen address must be an IPv4 address or a bracketed IPv6 address: ${JSON.stringify(listen.address)}`,
  );
  return `${listen.address}:${listen.port}`;
}

export function renderServerBlock(options: ServerBlockOptions): string {
  check(
    NAME.test(options.name),
    `name must be lowercase letters, digits and '-': ${JSON.stringify(options.name)}`,
  );
  check(options.hostnames.length > 0, 'at least one hostname is required');
  check(options.hostnames.length <= 100, 'at most 100 hostnames per environment');
  for (const hostname of options.hostnames) {
    check(isNginxSafeHostname(hostname), `not a valid hostname: ${JSON.stringify(hostname)}`);
  }
  check(new Set(options.hostnames).size === options.hostnames.length, 'hostnames must be unique');
  check(options.listen.length > 0, 'at least one listen address is required');
  const listens = options.listen.map(renderListen);
  assertSafeAbsolutePath(options.root, 'root');
  assertSafeAbsolutePath(options.fastcgiSocket, 'fastcgiSocket');
  check(SIZE.test(options.clientMaxBodySize), 'clientMaxBodySize must be a size like 64M');
  check(
    Number.isInteger(options.fastcgiReadTimeoutSeconds) &&
      options.fastcgiReadTimeoutSeconds >= 1 &&
      options.fastcgiReadTimeoutSeconds <= 3600,
    'fastcgiReadTimeoutSeconds must be an integer from 1 to 3600',
  );
  const scheme = options.publicScheme ?? 'http';
  check(scheme === 'http' || scheme === 'https', 'publicScheme must be http or https');
  if (options.publicPort !== undefined) {
    check(
      Number.isInteger(options.publicPort) && options.publicPort >= 1 && options.publicPort <= 65_535,
      'publicPort must be an integer from 1 to 65535',
    );
  }
  const defaultPort = scheme === 'https' ? 443 : 80;
  const hostWithPort =
    options.publicPort !== undefined && options.publicPort !== defaultPort
      ? [`        fastcgi_param HTTP_HOST $host:${options.publicPort};`]
      : [];
  if (options.accessLog !== undefined) assertSafeAbsolutePath(options.accessLog, 'accessLog');
  if (options.errorLog !== undefined) assertSafeAbsolutePath(options.errorLog, 'errorLog');
  const cache = options.fastcgiCache;
  if (cache) {
    check(ZONE.test(cache.zone), `fastcgiCache.zone must be letters, digits and '_': ${cache.zone}`);
    assertSafeAbsolutePath(cache.path, 'fastcgiCache.path');
  }

  const lines = [
    `# Managed by the wpcp agent for environment ${options.name}; changes are overwritten.`,
    ...(cache ? cacheHttpLines(cache) : []),
    'server {',
    ...listens.map((listen) => `    listen ${listen};`),
    `    server_name ${options.hostnames.join(' ')};`,
    `    root ${options.root};`,
    '    index index.php index.html;',
    `    client_max_body_size ${options.clientMaxBodySize};`,
  ];
  if (options.accessLog) lines.push(`    access_log ${options.accessLog};`);
  if (options.errorLog) lines.push(`    error_log ${options.errorLog};`);
  if (cache) lines.push(...cacheServerLines());
  lines.push(
    '',
    '    # Hidden files (.git, .env, .htaccess) are never served; ACME http-01 challenges are.',
    '    location ~ /\\.(?!well-known/) {',
    '        deny all;',
    '    }',
    '    # No PHP runs from uploads.',
    '    location ~* ^/wp-content/uploads/.*\\.(?:php[0-9]?|phtml|phar)$ {',
    '        deny all;',
    '    }',
    '',
    '    location / {',
    '        try_files $uri $uri/ /index.php?$args;',
    '    }',
    '',
    '    location ~ \\.php$ {',
    '        # Only scripts that exist run (no PATH_INFO tricks with uploaded files).',
    '        try_files $uri =404;',
    '        include fastcgi_params;',
    '        # The resolved path: the old release keeps serving until `current` switches.',
    '        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;',
    '        fastcgi_param DOCUMENT_ROOT $realpath_root;',
    ...hostWithPort,
    `        fastcgi_pass unix:${options.fastcgiSocket};`,
    `        fastcgi_read_timeout ${options.fastcgiReadTimeoutSeconds}s;`,
    ...(cache ? cacheLocationLines(cache) : []),
    '    }',
    '}',
    '',
  );
  return lines.join('\n');
}
