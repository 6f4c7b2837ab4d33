// The PHP-FPM pool of one environment: its own Linux user, its own socket, process limits and PHP
// limits. Every value is validated against a narrow pattern before it is written, so nothing from
// outside can add a directive (PHP-FPM's ini format ends a value at a newline and reads `;` as a
// comment and `"` / `$` specially).
//
// PHP limits (php_admin_value: a site cannot raise them with ini_set or .user.ini) default to:
//   memory_limit 256M, max_execution_time 60 s, max_input_time 60 s, max_input_vars 3000,
//   upload_max_filesize 64M, post_max_size 64M (nginx's client_max_body_size should match).
// Process manager defaults: ondemand, 5 children at most, idle children end after 10 s, each child
// is recycled after 500 requests; request_terminate_timeout is max_execution_time + 10 s so a stuck
// request is ended even where max_execution_time does not apply (sleeping, waiting on I/O).
import { invalidArgument } from './errors.ts';
import { assertSafeAbsolutePath } from './layout.ts';

export interface PhpLimits {
  memoryLimit: string;
  maxExecutionTimeSeconds: number;
  maxInputTimeSeconds: number;
  maxInputVars: number;
  uploadMaxFilesize: string;
  postMaxSize: string;
}

export const DEFAULT_PHP_LIMITS: Readonly<PhpLimits> = Object.freeze({
  memoryLimit: '256M',
  maxExecutionTimeSeconds: 60,
  maxInputTimeSeconds: 60,
  maxInputVars: 3000,
  uploadMaxFilesize: '64M',
  postMaxSize: '64M',
});

export type ProcessManager =
  | { mode: 'ondemand'; maxChildren: number; processIdleTimeoutSeconds: number; maxRequests: number }
  | {
      mode: 'dynamic';
      maxChildren: number;
      startServers: number;
      minSpareServers: number;
      maxSpareServers: number;
      maxRequests: number;
    }
  | { mode: 'static'; maxChildren: number; maxRequests: number };

export const DEFAULT_PROCESS_MANAGER: Readonly<ProcessManager> = Object.freeze({
  mode: 'ondemand',
  maxChildren: 5,
  processIdleTimeoutSeconds: 10,
  maxRequests: 500,
});

export interface PhpFpmPoolOptions {
  /** Pool name, the environment name (`<site>--<env>`). */
  name: string;
  user: string;
  group: string;
  /** Absolute path of the pool's unix socket. */
  socketPath: string;
  /** Owner and group of the socket: the user nginx's workers run as. */
  listenOwner: string;
  listenGroup: string;
  /** The environment root: the workers' working directory. */
  root: string;
  /** PHP's temp, upload and session directory (the layout's tmp/). */
  tmpDir: string;
  /** PHP error log file (in the layout's logs/). */
  errorLog: string;
  limits?: Partial<PhpLimits>;
  processManager?: ProcessManager;
  /** Directories PHP may open files in; unset by default (user isolation does the real work). */
  openBasedir?: readonly string[];
  /** Extra environment variables for the workers. */
  env?: Readonly<Record<string, string>>;
}

const POOL_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const SYSTEM_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const SIZE = /^[1-9][0-9]{0,5}[KMG]$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;
const ENV_VALUE = /^[A-Za-z0-9 ._:/@+,=-]{0,256}$/;

function check(condition: boolean, message: string): void {
  if (!condition) throw invalidArgument(message);
}

function checkInt(value: number, min: number, max: number, what: string): void {
  check(
    Number.isInteger(value) && value >= min && value <= max,
    `${what} must be an integer from ${min} to ${max}`,
  );
}

function sizeInBytes(size: string): number {
  const unit = size.slice(-1);
  const factor = unit === 'G' ? 1024 ** 3 : unit === 'M' ? 1024 ** 2 : 1024;
  return Number(size.slice(0, -1)) * factor;
}

export function resolvePhpLimits(limits: Partial<PhpLimits> = {}): PhpLimits {
  const resolved = { ...DEFAULT_PHP_LIMITS, ...limits };
  for (const key of ['memoryLimit', 'uploadMaxFilesize', 'postMaxSize'] as const) {
    check(SIZE.test(resolved[key]), `${key} must be a size like 256M (digits and K, M or G)`);
  }
  checkInt(resolved.maxExecutionTimeSeconds, 1, 3600, 'maxExecutionTimeSeconds');
  checkInt(resolved.maxInputTimeSeconds, 1, 3600, 'maxInputTimeSeconds');
  checkInt(resolved.maxInputVars, 100, 100_000, 'maxInputVars');
  check(
    sizeInBytes(resolved.postMaxSize) >= sizeInBytes(resolved.uploadMaxFilesize),
    'postMaxSize must be at least uploadMaxFilesize',
  );
  return resolved;
}

function checkProcessManager(pm: ProcessManager): void {
  checkInt(pm.maxChildren, 1, 256, 'maxChildren');
  checkInt(pm.maxRequests, 0, 1_000_000, 'maxRequests');
  if (pm.mode === 'ondemand') checkInt(pm.processIdleTimeoutSeconds, 1, 3600, 'processIdleTimeoutSeconds');
  if (pm.mode === 'dynamic') {
    checkInt(pm.minSpareServers, 1, pm.maxChildren, 'minSpareServers');
    checkInt(pm.maxSpareServers, pm.minSpareServers, pm.maxChildren, 'maxSpareServers');
    checkInt(pm.startServers, pm.minSpareServers, pm.maxSpareServers, 'startServers');
  }
}

export function renderPhpFpmPool(options: PhpFpmPoolOptions): string {
  check(
    POOL_NAME.test(options.name),
    `pool name must be lowercase letters, digits and '-': ${JSON.stringify(options.name)}`,
  );
  for (const [what, value] of [
    ['user', options.user],
    ['group', options.group],
    ['listenOwner', options.listenOwner],
    ['listenGroup', options.listenGroup],
  ] as const) {
    check(SYSTEM_NAME.test(value), `${what} must be a Linux user or group name: ${JSON.stringify(value)}`);
  }
  assertSafeAbsolutePath(options.socketPath, 'socketPath');
  check(options.socketPath.length <= 100, 'socketPath must be at most 100 characters (unix socket limit)');
  assertSafeAbsolutePath(options.root, 'root');
  assertSafeAbsolutePath(options.tmpDir, 'tmpDir');
  assertSafeAbsolutePath(options.errorLog, 'errorLog');
  for (const dir of options.openBasedir ?? []) assertSafeAbsolutePath(dir, 'openBasedir entry');
  const limits = resolvePhpLimits(options.limits);
  const pm = options.processManager ?? DEFAULT_PROCESS_MANAGER;
  checkProcessManager(pm);
  for (const [name, value] of Object.entries(options.env ?? {})) {
    check(
      ENV_NAME.test(name),
      `environment variable name must be upper-case letters, digits and '_': ${JSON.stringify(name)}`,
    );
    check(
      ENV_VALUE.test(value),
      `environment variable ${name} has characters a pool file cannot hold safely`,
    );
  }

  const lines = [
    `; Managed by the wpcp agent for environment ${options.name}; changes are overwritten.`,
    `[${options.name}]`,
    `user = ${options.user}`,
    `group = ${options.group}`,
    `listen = ${options.socketPath}`,
    `listen.owner = ${options.listenOwner}`,
    `listen.group = ${options.listenGroup}`,
    'listen.mode = 0660',
    `chdir = ${options.root}`,
    '',
    `pm = ${pm.mode}`,
    `pm.max_children = ${pm.maxChildren}`,
  ];
  if (pm.mode === 'ondemand') lines.push(`pm.process_idle_timeout = ${pm.processIdleTimeoutSeconds}s`);
  if (pm.mode === 'dynamic') {
    lines.push(
      `pm.start_servers = ${pm.startServers}`,
      `pm.min_spare_servers = ${pm.minSpareServers}`,
      `pm.max_spare_servers = ${pm.maxSpareServers}`,
    );
  }
  lines.push(
    `pm.max_requests = ${pm.maxRequests}`,
    `request_terminate_timeout = ${limits.maxExecutionTimeSeconds + 10}s`,
    'catch_workers_output = yes',
    'decorate_workers_output = no',
    'clear_env = yes',
    '',
    `env[TMPDIR] = ${options.tmpDir}`,
    ...Object.entries(options.env ?? {}).map(([name, value]) => `env[${name}] = "${value}"`),
    '',
    `php_admin_value[memory_limit] = ${limits.memoryLimit}`,
    `php_admin_value[max_execution_time] = ${limits.maxExecutionTimeSeconds}`,
    `php_admin_value[max_input_time] = ${limits.maxInputTimeSeconds}`,
    `php_admin_value[max_input_vars] = ${limits.maxInputVars}`,
    `php_admin_value[upload_max_filesize] = ${limits.uploadMaxFilesize}`,
    `php_admin_value[post_max_size] = ${limits.postMaxSize}`,
    `php_admin_value[upload_tmp_dir] = ${options.tmpDir}`,
    `php_admin_value[sys_temp_dir] = ${options.tmpDir}`,
    `php_admin_value[session.save_path] = ${options.tmpDir}`,
    `php_admin_value[error_log] = ${options.errorLog}`,
    'php_admin_flag[log_errors] = on',
    'php_admin_flag[display_errors] = off',
    'php_admin_flag[expose_php] = off',
    'php_admin_flag[allow_url_include] = off',
  );
  if (options.openBasedir && options.openBasedir.length > 0) {
    lines.push(`php_admin_value[open_basedir] = ${options.openBasedir.join(':')}`);
  }
  lines.push('');
  return lines.join('\n');
}
