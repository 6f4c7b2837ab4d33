// The stack harness itself: each server starts from the installed binaries in a temporary
// directory, answers, and stops leaving neither processes nor files behind.
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { shouldSkipStack } from './binaries.ts';
import { isAlive, processesInGroup } from './daemon.ts';
import { runCollect } from './exec.ts';
import { httpGet } from './http.ts';
import { startMariaDb } from './mariadb.ts';
import { startNginx } from './nginx.ts';
import { simplePool, startPhpFpm } from './php-fpm.ts';
import { startRedis } from './redis.ts';

const skip = shouldSkipStack();

async function expectGone(pid: number, dir: string): Promise<void> {
  expect(processesInGroup(pid)).toEqual([]);
  expect(isAlive(pid)).toBe(false);
  expect(existsSync(dir)).toBe(false);
}

describe.skipIf(skip)('stack harness', () => {
  it('MariaDB: starts in a temp dir, answers over the socket and TCP, stops cleanly', async () => {
    const started = performance.now();
    const db = await startMariaDb();
    const startMs = Math.round(performance.now() - started);
    try {
      expect(db.socketPath.startsWith(db.dir)).toBe(true);
      expect((await db.query('select 1')).trim()).toBe('1');
      // Over TCP with the generated root password (what a non-socket client would use).
      const tcp = await runCollect('/usr/bin/mysql', [
        `--defaults-file=${db.rootTcpDefaultsFile}`,
        '--batch',
        '--skip-column-names',
        '-e',
        'select 1 + 1, current_user()',
      ]);
      expect(tcp.code, tcp.stderr).toBe(0);
      expect(tcp.stdout.trim()).toBe('2\troot@127.0.0.1');
      // The data directory is the instance's, not the machine's.
      expect((await db.query('select @@datadir')).trim()).toBe(`${path.join(db.dir, 'data')}/`);
      console.info(`startMariaDb: ${startMs} ms`);
    } finally {
      await db.stop();
    }
    await expectGone(db.pid, db.dir);
  });

  it('Redis: answers PING over TCP, keeps nothing on disk, stops cleanly', async () => {
    const started = performance.now();
    const redis = await startRedis();
    const startMs = Math.round(performance.now() - started);
    try {
      expect(await redis.command('PING')).toBe('PONG');
      expect(await redis.command('SET', 'wpcp:test', 'value')).toBe('OK');
      expect(await redis.command('GET', 'wpcp:test')).toBe('value');
      expect(await redis.command('CONFIG', 'GET', 'save')).toEqual(['save', '']);
      console.info(`startRedis: ${startMs} ms`);
    } finally {
      await redis.stop();
    }
    await expectGone(redis.pid, redis.dir);
  });

  it('nginx + PHP-FPM: static file, PHP through fastcgi_pass to a pool socket, reload, failed test', async () => {
    let started = performance.now();
    const fpm = await startPhpFpm();
    const fpmMs = Math.round(performance.now() - started);
    started = performance.now();
    const nginx = await startNginx();
    const nginxMs = Math.round(performance.now() - started);
    try {
      // The default server serves a static file.
      await writeFile(path.join(nginx.htmlDir, 'hello.txt'), 'hello from the harness\n');
      const staticFile = await httpGet(nginx.url('/hello.txt'));
      expect(staticFile.status).toBe(200);
      expect(staticFile.body).toBe('hello from the harness\n');

      // A site: its own pool (as nobody) on its own socket, a server block for its hostname.
      const docroot = path.join(fpm.dir, 'site');
      await mkdir(docroot);
      await chmod(docroot, 0o755);
      await writeFile(
        path.join(docroot, 'index.php'),
        '<?php echo "php ", PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION, " as ", posix_getpwuid(posix_geteuid())["name"], " host ", $_SERVER["HTTP_HOST"];\n',
      );
      const socket = path.join(fpm.dir, 'site.sock');
      await writeFile(
        path.join(fpm.poolDir, 'site.conf'),
        simplePool({ name: 'site', socketPath: socket, user: 'nobody', group: 'nogroup' }).config,
      );
      await fpm.reload();
      await writeFile(
        path.join(nginx.sitesDir, 'site.conf'),
        [
          'server {',
          `    listen ${nginx.listen};`,
          '    server_name site.test;',
          `    root ${docroot};`,
          '    index index.php;',
          '    location ~ \\.php$ {',
          '        include fastcgi_params;',
          '        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;',
          `        fastcgi_pass unix:${socket};`,
          '    }',
          '}',
          '',
        ].join('\n'),
      );
      await nginx.reload();
      const php = await httpGet(nginx.url('/'), { host: 'site.test' });
      expect(php.status).toBe(200);
      expect(php.body).toBe('php 8.2 as nobody host site.test');
      // Unknown hostnames still reach the default server.
      expect((await httpGet(nginx.url('/hello.txt'), { host: 'other.test' })).status).toBe(200);

      // A broken server block fails the test; reload() refuses and the old config keeps serving.
      await writeFile(path.join(nginx.sitesDir, 'broken.conf'), 'server { listen nonsense }\n');
      const tested = await nginx.testConfig();
      expect(tested.ok).toBe(false);
      await expect(nginx.reload()).rejects.toThrow(/configuration test failed/);
      expect((await httpGet(nginx.url('/'), { host: 'site.test' })).status).toBe(200);
      console.info(`startPhpFpm: ${fpmMs} ms, startNginx: ${nginxMs} ms`);
    } finally {
      await nginx.stop();
      await fpm.stop();
    }
    await expectGone(nginx.pid, nginx.dir);
    await expectGone(fpm.pid, fpm.dir);
  });

  it('nginx on all addresses: server blocks that listen on the bare port share the listener', async () => {
    const nginx = await startNginx({ listenAddress: '*' });
    try {
      expect(nginx.listen).toBe(String(nginx.port));
      await writeFile(
        path.join(nginx.sitesDir, 'bare.conf'),
        `server {\n    listen ${nginx.listen};\n    server_name bare.test;\n    return 200 "bare\\n";\n}\n`,
      );
      await nginx.reload();
      expect((await httpGet(nginx.url('/'), { host: 'bare.test' })).body).toBe('bare\n');
    } finally {
      await nginx.stop();
    }
    await expectGone(nginx.pid, nginx.dir);
  });
});
