// A private MariaDB server for one test suite: data directory, socket, pid file and logs in a
// temporary directory, listening on a free loopback port, removed on stop().
//
// Authentication mirrors a Debian node: `root@localhost` is identified by unix_socket (the OS user
// root needs no password over the socket, as the agent connects on a real node) OR by a generated
// password; `root@127.0.0.1` by the password over TCP.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { BINARIES } from './binaries.ts';
import { logTail, makeInstanceDir, removeInstanceDir, spawnDaemon, waitUntilReady } from './daemon.ts';
import { runCollect } from './exec.ts';
import { freePort } from './ports.ts';

export interface MariaDbInstance {
  readonly dir: string;
  readonly socketPath: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly rootUser: 'root';
  readonly rootPassword: string;
  readonly pid: number;
  /**
   * Arguments for the `mysql` client to connect as root over the socket (no password: unix_socket
   * authentication, as on a Debian node where the agent runs as root).
   */
  readonly clientArgs: readonly string[];
  /** A client option file (`--defaults-file=`) for root over TCP with the password. */
  readonly rootTcpDefaultsFile: string;
  /** Runs SQL (on stdin) as root through the socket; resolves with the tab-separated rows. */
  query(sql: string): Promise<string>;
  stop(): Promise<void>;
}

export interface StartMariaDbOptions {
  /** Parent of the instance directory; defaults to the OS temp dir. */
  parentDir?: string;
}

/** Settings that keep a test server small and fast; durability is not needed here. */
const SERVER_TUNING = [
  '--innodb-buffer-pool-size=32M',
  '--innodb-log-file-size=8M',
  '--innodb-flush-log-at-trx-commit=2',
  '--skip-name-resolve',
  '--skip-log-bin',
  '--max-connections=100',
];

export async function startMariaDb(options: StartMariaDbOptions = {}): Promise<MariaDbInstance> {
  const dir = await makeInstanceDir('mariadb', options.parentDir);
  const dataDir = path.join(dir, 'data');
  const socketPath = path.join(dir, 'mysqld.sock');
  const logFile = path.join(dir, 'mariadbd.log');
  const port = await freePort();
  const rootPassword = randomBytes(18).toString('base64url');

  try {
    const install = await runCollect(BINARIES.mariadbInstallDb, [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--user=root',
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      ...SERVER_TUNING,
    ]);
    if (install.code !== 0) {
      throw new Error(`mariadb-install-db failed (${install.code}):\n${install.output}`);
    }
  } catch (err) {
    await removeInstanceDir(dir);
    throw err;
  }

  const daemon = spawnDaemon({
    file: BINARIES.mariadbd,
    args: [
      '--no-defaults',
      '--user=root',
      `--datadir=${dataDir}`,
      `--socket=${socketPath}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      `--log-error=${logFile}`,
      `--tmpdir=${dir}`,
      ...SERVER_TUNING,
    ],
    logFile: path.join(dir, 'mariadbd.out'),
  });

  const rootTcpDefaultsFile = path.join(dir, 'root-tcp.cnf');
  const clientArgs = ['--no-defaults', '--protocol=socket', `--socket=${socketPath}`, '--user=root'];
  const query = async (sql: string): Promise<string> => {
    const result = await runCollect(BINARIES.mysql, [...clientArgs, '--batch', '--skip-column-names'], {
      stdin: sql,
    });
    if (result.code !== 0) throw new Error(`mysql failed (${result.code}): ${result.stderr}`);
    return result.stdout;
  };

  const stop = async (): Promise<void> => {
    await daemon.stop(30_000);
    await removeInstanceDir(dir);
  };

  try {
    await waitUntilReady(daemon, 'mariadbd', () => greets(socketPath));
    await query(
      [
        `ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(${sqlString(rootPassword)});`,
        `ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY ${sqlString(rootPassword)};`,
        // Install-time extras nobody needs: root from the machine's hostname and from ::1.
        `DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1');`,
        `DELETE FROM mysql.global_priv WHERE User = '';`,
        'FLUSH PRIVILEGES;',
      ].join('\n'),
    );
    await writeFile(
      rootTcpDefaultsFile,
      `[client]\nuser=root\npassword=${rootPassword}\nhost=127.0.0.1\nport=${port}\nprotocol=tcp\n`,
      { mode: 0o600 },
    );
  } catch (err) {
    const log = await logTail(logFile);
    await stop();
    throw new Error(`${(err as Error).message}\nmariadbd error log:\n${log}`);
  }

  return {
    dir,
    socketPath,
    host: '127.0.0.1',
    port,
    rootUser: 'root',
    rootPassword,
    pid: daemon.pid,
    clientArgs,
    rootTcpDefaultsFile,
    query,
    stop,
  };
}

/** A single-quoted SQL string literal (MariaDB's default sql_mode: backslash is an escape). */
function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** True once the server sends its handshake on the socket. */
function greets(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('data', () => done(true));
    socket.once('error', () => done(false));
  });
}
