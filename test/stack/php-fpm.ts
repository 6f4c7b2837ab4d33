// A private PHP-FPM master for one test suite: generated main config, pid file and error log in a
// temporary directory, pools read from a pool directory (the harness's own, or one the caller
// manages the way the agent manages /etc/php/8.2/fpm/pool.d). A built-in pool running as `nobody`
// keeps the master startable when the pool directory is empty (PHP-FPM refuses to start without a
// pool) and gives a socket to probe.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BINARIES } from './binaries.ts';
import { logTail, makeInstanceDir, removeInstanceDir, spawnDaemon, waitUntilReady } from './daemon.ts';
import { runCollect } from './exec.ts';

export interface PhpFpmPoolFile {
  /** File name stem: the pool is written to `<poolDir>/<name>.conf`. */
  name: string;
  /** The pool's configuration text, `[name]` section included. */
  config: string;
}

export interface StartPhpFpmOptions {
  /** Pool files written into the pool directory before the master starts. */
  pools?: readonly PhpFpmPoolFile[];
  /** Where pools are read from (`*.conf`); defaults to `<instance dir>/pool.d`. */
  poolDir?: string;
  /** The user nginx workers run as: owner of the built-in pool's socket. Default www-data. */
  webUser?: string;
  parentDir?: string;
}

export interface PhpFpmInstance {
  readonly dir: string;
  readonly poolDir: string;
  readonly configPath: string;
  readonly pid: number;
  /** Socket of the built-in `wpcp-harness` pool (runs as nobody). */
  readonly harnessSocket: string;
  /** argv that checks the whole configuration (`php-fpm8.2 -t -y <conf>`), as the agent would run it. */
  readonly testArgv: readonly string[];
  /**
   * argv of a graceful reload as a node would run it (`kill -USR2 <master pid>`; systemd's
   * `systemctl reload php8.2-fpm` does the same). It returns before the pools are back: wait for
   * the pool's socket to accept (see reload()).
   */
  readonly reloadArgv: readonly string[];
  /** Checks the configuration: ok and the checker's output. */
  testConfig(): Promise<{ ok: boolean; output: string }>;
  /**
   * Graceful reload (SIGUSR2) after a successful config test; resolves when the re-executed master
   * is ready again. A failing config test throws and leaves the running master alone (PHP-FPM exits
   * on a reload with a broken config, so the agent must always test first).
   */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

const READY_LINE = 'ready to handle connections';

export async function startPhpFpm(options: StartPhpFpmOptions = {}): Promise<PhpFpmInstance> {
  const dir = await makeInstanceDir('php-fpm', options.parentDir);
  const poolDir = options.poolDir ?? path.join(dir, 'pool.d');
  await mkdir(poolDir, { recursive: true });
  const configPath = path.join(dir, 'php-fpm.conf');
  const errorLog = path.join(dir, 'php-fpm.log');
  const harnessSocket = path.join(dir, 'harness.sock');
  const asRoot = process.getuid?.() === 0;
  const webUser = options.webUser ?? 'www-data';

  const harnessPool = [
    '[wpcp-harness]',
    ...(asRoot ? ['user = nobody', 'group = nogroup'] : []),
    `listen = ${harnessSocket}`,
    ...(asRoot ? [`listen.owner = ${webUser}`, `listen.group = ${webUser}`] : []),
    'listen.mode = 0660',
    'pm = ondemand',
    'pm.max_children = 2',
    'pm.process_idle_timeout = 10s',
    '',
  ].join('\n');
  await writeFile(path.join(dir, 'harness-pool.conf'), harnessPool);
  for (const pool of options.pools ?? []) {
    await writeFile(path.join(poolDir, `${pool.name}.conf`), pool.config);
  }
  await writeFile(
    configPath,
    [
      '[global]',
      `pid = ${path.join(dir, 'php-fpm.pid')}`,
      `error_log = ${errorLog}`,
      'log_level = notice',
      'daemonize = no',
      // A child that dies of a signal 10 times in a minute makes the master restart itself.
      'emergency_restart_threshold = 10',
      'emergency_restart_interval = 1m',
      `include = ${path.join(dir, 'harness-pool.conf')}`,
      `include = ${path.join(poolDir, '*.conf')}`,
      '',
    ].join('\n'),
  );

  const testArgv = [BINARIES.phpFpm, '-t', '-y', configPath] as const;
  const testConfig = async () => {
    const result = await runCollect(testArgv[0], testArgv.slice(1));
    return { ok: result.code === 0, output: result.output };
  };

  // Fail early with the checker's words rather than a dead master.
  const check = await testConfig();
  if (!check.ok) {
    await removeInstanceDir(dir);
    throw new Error(`php-fpm configuration test failed:\n${check.output}`);
  }

  const daemon = spawnDaemon({
    file: BINARIES.phpFpm,
    args: ['--nodaemonize', '--fpm-config', configPath],
    logFile: path.join(dir, 'php-fpm.out'),
  });
  const stop = async () => {
    await daemon.stop();
    await removeInstanceDir(dir);
  };
  const readyCount = async () => {
    const text = existsSync(errorLog) ? await readFile(errorLog, 'utf8') : '';
    return text.split(READY_LINE).length - 1;
  };

  try {
    await waitUntilReady(
      daemon,
      'php-fpm',
      async () => (await readyCount()) >= 1 && (await accepts(harnessSocket)),
    );
  } catch (err) {
    const log = await logTail(errorLog);
    await stop();
    throw new Error(`${(err as Error).message}\nphp-fpm error log:\n${log}`);
  }

  return {
    dir,
    poolDir,
    configPath,
    pid: daemon.pid,
    harnessSocket,
    testArgv,
    reloadArgv: ['/bin/kill', '-USR2', String(daemon.pid)],
    testConfig,
    async reload() {
      const tested = await testConfig();
      if (!tested.ok) throw new Error(`php-fpm configuration test failed; not reloading:\n${tested.output}`);
      const before = await readyCount();
      process.kill(daemon.pid, 'SIGUSR2');
      const deadline = Date.now() + 15_000;
      while ((await readyCount()) <= before) {
        if (!daemon.isRunning()) throw new Error(`php-fpm exited on reload:\n${await logTail(errorLog)}`);
        if (Date.now() > deadline)
          throw new Error(`php-fpm did not finish reloading:\n${await logTail(errorLog)}`);
        await sleep(25);
      }
    },
    stop,
  };
}

/** True when a unix socket accepts a connection. */
export function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A minimal pool for tests that do not render pools with the agent's renderer. */
export function simplePool(options: {
  name: string;
  socketPath: string;
  user: string;
  group: string;
  listenOwner?: string;
}): PhpFpmPoolFile {
  const owner = options.listenOwner ?? 'www-data';
  return {
    name: options.name,
    config: [
      `[${options.name}]`,
      `user = ${options.user}`,
      `group = ${options.group}`,
      `listen = ${options.socketPath}`,
      `listen.owner = ${owner}`,
      `listen.group = ${owner}`,
      'listen.mode = 0660',
      'pm = ondemand',
      'pm.max_children = 2',
      '',
    ].join('\n'),
  };
}
