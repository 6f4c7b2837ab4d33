import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentConfig } from '../config.ts';
import { fastcgiCacheZone, renderServerBlock } from '../provisioning/nginx-server-block.ts';
import { escapeRedisGlob, parseReply } from '../provisioning/redis.ts';
import { fastcgiCacheDir, serverBlockFor, validateConfigureNginx } from './configure-nginx.ts';
import { nodeStackFromConfig } from './node-stack.ts';
import { emptyDirectory, validatePurgeCache } from './purge-cache.ts';
import { validateSetObjectCache } from './set-object-cache.ts';

const environment = {
  name: 'shop--prod',
  systemUser: 'wp_abcdef123456',
  databaseName: 'wp_abcdef123456',
  databaseUser: 'wp_abcdef123456',
  redisPrefix: 'wpcp:abcdef123456:',
};
const stack = nodeStackFromConfig(AgentConfig.parse({ server: 'localhost:1' }));

describe('FastCGI page cache rendering', () => {
  it('renders one zone and directory per environment, the skip rules and X-Cache when on', () => {
    const config = serverBlockFor(stack, environment, ['shop.example.com'], true);
    expect(fastcgiCacheDir(stack, environment)).toBe('/var/cache/nginx/wpcp/shop--prod');
    expect(config).toContain(
      'fastcgi_cache_path /var/cache/nginx/wpcp/shop--prod levels=1:2 keys_zone=wpcp_shop__prod:10m',
    );
    // fastcgi_cache_path is at http level: before the server block.
    expect(config.indexOf('fastcgi_cache_path')).toBeLessThan(config.indexOf('server {'));
    expect(config).toContain('fastcgi_cache wpcp_shop__prod;');
    expect(config).toContain('add_header X-Cache $upstream_cache_status always;');
    expect(config).toContain('if ($request_method !~ ^(?:GET|HEAD)$)');
    expect(config).toContain('if ($query_string != "")');
    for (const rule of [
      'wp-admin/',
      'wp-login\\.php',
      'xmlrpc\\.php',
      'wp-json/',
      'cart|checkout|my-account',
    ])
      expect(config).toContain(rule);
    for (const cookie of ['wordpress_logged_in_', 'comment_author', 'wp-postpass_', 'woocommerce_'])
      expect(config).toContain(cookie);
    expect(config).toContain('fastcgi_cache_bypass $wpcp_skip_cache;');
    expect(config).toContain('fastcgi_no_cache $wpcp_skip_cache;');
  });

  it('renders none of it when off', () => {
    const config = serverBlockFor(stack, environment, ['shop.example.com'], false);
    expect(config).not.toMatch(/fastcgi_cache|X-Cache|wpcp_skip_cache/);
  });

  it('refuses unsafe zone names and paths', () => {
    const base = {
      name: 'shop--prod',
      hostnames: ['a.test'],
      listen: [{ port: 80 }],
      root: '/srv/wpcp/shop--prod/current',
      fastcgiSocket: '/run/php/x.sock',
      clientMaxBodySize: '64M',
      fastcgiReadTimeoutSeconds: 70,
    };
    expect(() =>
      renderServerBlock({ ...base, fastcgiCache: { zone: 'a;b', path: '/var/cache/x' } }),
    ).toThrow();
    expect(() =>
      renderServerBlock({ ...base, fastcgiCache: { zone: 'ok', path: '/var/cache/x y' } }),
    ).toThrow();
    expect(fastcgiCacheZone('a-b--c')).toBe('wpcp_a_b__c');
  });

  it('validates the payloads', () => {
    expect(
      validateConfigureNginx({ environment, hostnames: ['a.test'], fastcgiCache: true, remove: false }),
    ).toMatchObject({ fastcgiCache: true });
    expect(validateSetObjectCache({ environment, enabled: true })).toMatchObject({ enabled: true });
    expect(() => validatePurgeCache({ environment: { ...environment, redisPrefix: 'x*' } })).toThrow(
      /redis_prefix/,
    );
    expect(() => validatePurgeCache({ environment: undefined })).toThrow();
  });
});

describe('purge helpers', () => {
  it('escapes Redis glob characters', () => {
    expect(escapeRedisGlob('a*b?c[d]e\\f')).toBe('a\\*b\\?c\\[d\\]e\\\\f');
    expect(escapeRedisGlob('wpcp:abc:')).toBe('wpcp:abc:');
  });

  it('parses RESP replies, including partial ones', () => {
    const reply = Buffer.from('*2\r\n$1\r\n0\r\n*2\r\n$3\r\nk:1\r\n$3\r\nk:2\r\n');
    const parsed = parseReply(reply);
    expect(parsed?.next).toBe(reply.length);
    expect(JSON.stringify(parsed?.value)).toContain('"type":"Buffer"');
    expect(parseReply(reply.subarray(0, reply.length - 3))).toBeUndefined();
    expect(parseReply(Buffer.from('-ERR no\r\n'))?.value).toEqual({ error: 'ERR no' });
  });

  it('empties a directory tree, keeps the directory, counts the files', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wpcp-purge-'));
    try {
      await mkdir(path.join(dir, 'a/bc'), { recursive: true });
      await writeFile(path.join(dir, 'a/bc/one'), '1');
      await writeFile(path.join(dir, 'a/bc/two'), '2');
      await writeFile(path.join(dir, 'three'), '3');
      expect(await emptyDirectory(dir)).toBe(3);
      expect(await readdir(dir)).toEqual([]);
      expect(await emptyDirectory(dir)).toBe(0);
      expect(await emptyDirectory(path.join(dir, 'missing'))).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
