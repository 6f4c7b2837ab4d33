// Magic login end to end on the hermetic stack: an environment provisioned through the agent's
// handlers (real nginx, PHP-FPM, MariaDB, WordPress and the WP-CLI double), then
// `create_magic_login`, and headless Chromium (Debian's chromium, driven by playwright-core)
// opening the login URL. One use, expiry, the atomic consume and the access log are checked too.
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type EnvironmentSpec, EnvironmentStepKind } from '@wpcp/shared/agent-protocol';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { environmentLayout } from '../../node-agent/src/provisioning/layout.ts';
import { deleteLinuxUser, lookupLinuxUser } from '../../node-agent/src/provisioning/linux-user.ts';
import { dropDatabaseAndUser } from '../../node-agent/src/provisioning/mariadb.ts';
import { generateShortId } from '../../node-agent/src/provisioning/names.ts';
import { type AgentStack, type CommandOutcome, startAgentStack } from './agent-stack.ts';
import { shouldSkipStack } from './binaries.ts';
import { type HttpResponse, httpGet } from './http.ts';

const skip = shouldSkipStack();
const CHROMIUM = '/usr/bin/chromium';

const STEPS = [
  EnvironmentStepKind.CREATE_USER,
  EnvironmentStepKind.CREATE_LAYOUT,
  EnvironmentStepKind.CREATE_PHP_POOL,
  EnvironmentStepKind.CREATE_DATABASE,
  EnvironmentStepKind.INSTALL_CORE,
  EnvironmentStepKind.WRITE_WP_CONFIG,
  EnvironmentStepKind.INSTALL_WORDPRESS,
  EnvironmentStepKind.INSTALL_CRON,
] as const;

function postForm(url: string, host: string, form: Record<string, string>): Promise<HttpResponse> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: {
          connection: 'close',
          host,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(Buffer.byteLength(body)),
        },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${url}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(skip)('magic login on the stack', () => {
  let s: AgentStack;
  let browser: Browser;
  let profile: string;
  const timings: Record<string, number> = {};
  const id = generateShortId();
  const spec: EnvironmentSpec = {
    name: 'stack-magic--prod',
    systemUser: `wp_${id}`,
    databaseName: `wp_${id}`,
    databaseUser: `wp_${id}`,
    redisPrefix: `wpcp:${id}:`,
  };
  const hostname = `${spec.name}.node.test`;
  const hostHeader = () => `${hostname}:${s.nginx.port}`;
  const siteUrl = () => `http://${hostname}:${s.nginx.port}`;
  const issued: string[] = [];

  const expectOk = (outcome: CommandOutcome) => {
    expect(outcome.status, `${outcome.id}: ${outcome.errorCode} ${outcome.errorMessage}`).toBe('succeeded');
    return outcome.output;
  };
  const step = (kind: EnvironmentStepKind, undo = false) =>
    s.run({
      $case: 'environmentStep',
      value: {
        environment: spec,
        kind,
        undo,
        siteUrl: kind === EnvironmentStepKind.INSTALL_WORDPRESS && !undo ? siteUrl() : '',
        siteTitle: kind === EnvironmentStepKind.INSTALL_WORDPRESS && !undo ? 'Magic shop' : '',
        purgeBackups: true,
        adminUser: kind === EnvironmentStepKind.INSTALL_WORDPRESS && !undo ? 'wpcp-admin' : '',
        adminEmail: kind === EnvironmentStepKind.INSTALL_WORDPRESS && !undo ? 'admin@example.test' : '',
      },
    });
  const nginx = (remove: boolean) =>
    s.run({
      $case: 'configureNginx',
      value: { environment: spec, hostnames: remove ? [] : [hostname], fastcgiCache: false, remove },
    });
  const magicLogin = async (ttlSeconds = 60) => {
    const outcome = await s.run({
      $case: 'createMagicLogin',
      value: { environment: spec, siteUrl: siteUrl(), ttlSeconds },
    });
    const output = expectOk(outcome) as { login_url: string; expires_at_ms: number; user: string };
    const token = output.login_url.split('#')[1] as string;
    issued.push(token);
    return { ...output, token, outcome };
  };

  /** Opens the URL in a fresh browser context; the page's final URL, text and cookies. */
  const open = async (url: string) => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(url, { waitUntil: 'load' });
      // The page POSTs the fragment and the browser follows the answer.
      await page.waitForFunction('!document.title.startsWith("Logging in")', undefined, { timeout: 20_000 });
      await page.waitForLoadState('load');
      return {
        url: page.url(),
        title: await page.title(),
        text: (await page.textContent('body')) ?? '',
        cookies: await context.cookies(),
      };
    } finally {
      await context.close();
    }
  };

  beforeAll(async () => {
    let started = performance.now();
    s = await startAgentStack();
    timings.stack = Math.round(performance.now() - started);
    started = performance.now();
    for (const kind of STEPS) expectOk(await step(kind));
    expectOk(await nginx(false));
    timings.provision = Math.round(performance.now() - started);
    // playwright-core gives the browser a fresh temporary profile (--user-data-dir) of its own;
    // `profile` is its temp dir (TMPDIR), removed afterwards.
    profile = await mkdtemp(path.join(tmpdir(), 'wpcp-chromium-'));
    browser = await chromium.launch({
      env: { ...process.env, TMPDIR: profile },
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--host-resolver-rules=MAP ${hostname} 127.0.0.1`,
      ],
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    if (profile) await rm(profile, { recursive: true, force: true });
    if (s) {
      await nginx(true).catch(() => {});
      for (const kind of [...STEPS].reverse()) await step(kind, true).catch(() => {});
      await deleteLinuxUser(spec.systemUser).catch(() => {});
      await dropDatabaseAndUser(s.stack.database.admin, {
        database: spec.databaseName,
        user: spec.databaseUser,
      }).catch(() => {});
      await s.stop();
    }
    console.info(`magic login timings (ms): ${JSON.stringify(timings)}`);
  }, 120_000);

  it('installs the must-use plugin at provisioning, and issues a token stored only as a hash', async () => {
    const layout = environmentLayout(s.sitesDir, spec.name);
    const user = await lookupLinuxUser(spec.systemUser);
    const plugin = await stat(path.join(layout.current, 'wp-content/mu-plugins/wpcp-magic-login.php'));
    expect(plugin.uid).toBe(user?.uid);

    const started = performance.now();
    const login = await magicLogin();
    timings.issue = Math.round(performance.now() - started);
    expect(login.login_url).toMatch(new RegExp(`^${siteUrl()}/wpcp-login/#[A-Za-z0-9_-]{43}$`));
    expect(login.user).toBe('wpcp-admin');
    expect(login.expires_at_ms).toBeGreaterThan(Date.now() + 55_000);
    expect(login.expires_at_ms).toBeLessThanOrEqual(Date.now() + 60_000);
    // Never in the command's log lines or progress messages.
    expect(JSON.stringify(login.outcome.logs)).not.toContain(login.token);

    const dir = path.join(layout.shared, 'magic-login');
    const info = await stat(dir);
    expect([info.uid, info.mode & 0o777]).toEqual([user?.uid, 0o700]);
    const files = await readdir(dir);
    expect(files.length).toBeGreaterThanOrEqual(1);
    for (const file of files) {
      expect(file).toMatch(/^[0-9a-f]{64}\.json$/);
      const fileInfo = await stat(path.join(dir, file));
      expect([fileInfo.uid, fileInfo.mode & 0o777]).toEqual([user?.uid, 0o600]);
      const content = await readFile(path.join(dir, file), 'utf8');
      expect(content).not.toContain(login.token);
      expect(JSON.parse(content)).toMatchObject({ host: hostHeader(), user_id: 1 });
    }
  });

  it('logs Chromium in to wp-admin once; the same URL again shows the expired page', async () => {
    const login = await magicLogin();
    let started = performance.now();
    const first = await open(login.login_url);
    timings.browserLogin = Math.round(performance.now() - started);
    expect(first.url).toMatch(new RegExp(`^${siteUrl()}/wp-admin/`));
    expect(first.title).toContain('Dashboard');
    expect(first.text).toContain('wpcp-admin');
    expect(first.cookies.some((c) => c.name.startsWith('wordpress_logged_in_'))).toBe(true);

    started = performance.now();
    const again = await open(login.login_url);
    timings.browserReuse = Math.round(performance.now() - started);
    expect(again.title).toBe('This login link has expired');
    expect(again.text).toContain('This login link has expired');
    expect(again.url).not.toContain('/wp-admin');
    expect(again.url).not.toContain(login.token);
    expect(again.cookies.some((c) => c.name.startsWith('wordpress_logged_in_'))).toBe(false);
  });

  it('does not log in after the token expired (2 s TTL)', async () => {
    const login = await magicLogin(2);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const late = await open(login.login_url);
    expect(late.title).toBe('This login link has expired');
    expect(late.cookies.some((c) => c.name.startsWith('wordpress_logged_in_'))).toBe(false);
  });

  it('lets exactly one of two concurrent consumes of a token log in', async () => {
    for (let round = 0; round < 3; round++) {
      const login = await magicLogin();
      const url = s.nginx.url('/wpcp-login/');
      const answers = await Promise.all([
        postForm(url, hostHeader(), { token: login.token }),
        postForm(url, hostHeader(), { token: login.token }),
      ]);
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses).toEqual([302, 410]);
      const winner = answers.find((a) => a.status === 302) as HttpResponse;
      expect(String(winner.headers.location)).toBe(`${siteUrl()}/wp-admin/`);
      expect(JSON.stringify(winner.headers['set-cookie'])).toContain('wordpress_logged_in_');
      const loser = answers.find((a) => a.status === 410) as HttpResponse;
      expect(loser.body).toContain('This login link has expired');
      expect(loser.headers['set-cookie']).toBeUndefined();
    }
  });

  it('refuses a token presented on another hostname of the environment (and burns it), and unknown tokens', async () => {
    const alias = `${spec.name}.example.test`;
    const aliasHost = `${alias}:${s.nginx.port}`;
    expectOk(
      await s.run({
        $case: 'configureNginx',
        value: { environment: spec, hostnames: [hostname, alias], fastcgiCache: false, remove: false },
      }),
    );
    try {
      // Until the reload has taken: WordPress answers the login page on the alias.
      const deadline = Date.now() + 10_000;
      while ((await httpGet(s.nginx.url('/wpcp-login/'), { host: aliasHost })).status !== 200) {
        if (Date.now() > deadline) throw new Error('nginx did not serve the alias');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const login = await magicLogin();
      const wrongHost = await postForm(s.nginx.url('/wpcp-login/'), aliasHost, { token: login.token });
      expect(wrongHost.status).toBe(410);
      expect(wrongHost.headers['set-cookie']).toBeUndefined();
      // The attempt consumed it: the right host is too late now.
      const after = await postForm(s.nginx.url('/wpcp-login/'), hostHeader(), { token: login.token });
      expect(after.status).toBe(410);
    } finally {
      expectOk(await nginx(false));
    }
    const unknown = await postForm(s.nginx.url('/wpcp-login/'), hostHeader(), { token: 'A'.repeat(43) });
    expect(unknown.status).toBe(410);
    expect(unknown.body).toContain('This login link has expired');
    const page = await httpGet(s.nginx.url('/wpcp-login/'), { host: hostHeader() });
    expect(page.status).toBe(200);
    expect(page.body).toContain('location.hash');
  });

  it('never writes a token to the environment nginx access log', async () => {
    const layout = environmentLayout(s.sitesDir, spec.name);
    const log = await readFile(path.join(layout.logs, 'nginx-access.log'), 'utf8');
    expect(log).toContain('/wpcp-login/');
    expect(issued.length).toBeGreaterThanOrEqual(5);
    for (const token of issued) expect(log).not.toContain(token);
  });
});
