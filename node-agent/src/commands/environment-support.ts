// Pieces the environment handlers share: looking up what earlier steps made (and saying which step
// is missing when it is not there), wp-config.php with the node-kept database password, and WP-CLI
// as the environment's user.
import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { RunResult } from '../exec/run.ts';
import { readIfExists, writeFileAtomically } from '../provisioning/atomic-config.ts';
import type { ValidEnvironment } from '../provisioning/environment-spec.ts';
import { ProvisioningError } from '../provisioning/errors.ts';
import { type EnvironmentLayout, environmentLayout } from '../provisioning/layout.ts';
import {
  COMMENT_PREFIX,
  type LinuxUser,
  lookupGroupId,
  lookupLinuxUser,
} from '../provisioning/linux-user.ts';
import { environmentFileStem } from '../provisioning/names.ts';
import { readDatabaseSecret } from '../provisioning/secrets.ts';
import { wpCliError, wpCliInvocation } from '../provisioning/wp-cli.ts';
import { renderWpConfig, SALT_NAMES, type WpSalts } from '../provisioning/wp-config.ts';
import type { HandlerKit } from './handler-kit.ts';
import type { NodeStack } from './node-stack.ts';

export function layoutOf(stack: NodeStack, environment: ValidEnvironment): EnvironmentLayout {
  return environmentLayout(stack.sitesDir, environment.name);
}

export function missing(step: string, what: string): ProvisioningError {
  return new ProvisioningError('step_prerequisite_missing', `${what}: run ${step} first`);
}

/** The environment's Linux user, made by CREATE_USER for this environment. */
export async function requireUser(stack: NodeStack, environment: ValidEnvironment): Promise<LinuxUser> {
  const user = await lookupLinuxUser(environment.systemUser, stack.linuxUserTools);
  if (!user) throw missing('CREATE_USER', `the Linux user ${environment.systemUser} does not exist`);
  if (user.comment !== `${COMMENT_PREFIX}${environment.name}`) {
    throw new ProvisioningError(
      'linux_user_exists',
      `the Linux user ${environment.systemUser} is not the one wpcp made for ${environment.name}`,
    );
  }
  if (user.uid === 0 || user.gid === 0) {
    throw new ProvisioningError('linux_user_exists', `${environment.systemUser} has uid or gid 0`);
  }
  return user;
}

export async function isDirectory(dir: string): Promise<boolean> {
  const info = await lstat(dir).catch(() => undefined);
  return info?.isDirectory() ?? false;
}

/** The directories CREATE_LAYOUT makes. */
export async function requireLayout(layout: EnvironmentLayout): Promise<void> {
  for (const dir of [layout.root, layout.releases, layout.shared, layout.tmp, layout.logs]) {
    if (!(await isDirectory(dir))) throw missing('CREATE_LAYOUT', `${dir} does not exist`);
  }
}

/** `current` and the WordPress it points at. */
export async function requireCurrent(layout: EnvironmentLayout): Promise<void> {
  const info = await lstat(layout.current).catch(() => undefined);
  if (!info?.isSymbolicLink()) throw missing('INSTALL_CORE', `${layout.current} does not exist`);
  const loader = await lstat(path.join(layout.current, 'wp-load.php')).catch(() => undefined);
  if (!loader?.isFile()) throw missing('INSTALL_CORE', `${layout.current} holds no WordPress`);
}

export async function webGroupId(stack: NodeStack): Promise<number> {
  const gid = await lookupGroupId(stack.webUser, stack.linuxUserTools);
  if (gid === undefined) {
    throw new ProvisioningError(
      'step_prerequisite_missing',
      `the web group ${stack.webUser} does not exist (is nginx installed? see webUser)`,
    );
  }
  return gid;
}

export function poolFilePath(stack: NodeStack, environment: ValidEnvironment): string {
  return path.join(stack.phpFpm.poolDir, `${environmentFileStem(environment.name)}.conf`);
}

export function poolSocketPath(stack: NodeStack, environment: ValidEnvironment): string {
  return path.join(stack.phpFpm.socketDir, `${environmentFileStem(environment.name)}.sock`);
}

export function serverBlockPath(stack: NodeStack, environment: ValidEnvironment): string {
  return path.join(stack.nginx.sitesDir, `${environmentFileStem(environment.name)}.conf`);
}

export function cronFilePath(stack: NodeStack, environment: ValidEnvironment): string {
  return path.join(stack.cronDir, environmentFileStem(environment.name));
}

/** The salts of an existing wp-config.php written by the agent (undefined when incomplete). */
export function saltsOf(wpConfig: string): WpSalts | undefined {
  const salts = {} as WpSalts;
  for (const name of SALT_NAMES) {
    const match = new RegExp(`define\\( '${name}', '((?:[^'\\\\]|\\\\.)*)' \\);`).exec(wpConfig);
    if (!match?.[1]) return undefined;
    salts[name] = match[1].replace(/\\(['\\])/g, '$1');
  }
  return salts;
}

/**
 * Writes shared/wp-config.php (user:user 0600) for the environment: its database with the password
 * kept on the node, its Redis prefix, DISABLE_WP_CRON. The salts of an existing file are kept (new
 * ones would log every user out), so writing it again changes nothing.
 */
export async function writeWpConfig(
  stack: NodeStack,
  environment: ValidEnvironment,
  layout: EnvironmentLayout,
  user: LinuxUser,
  kit: HandlerKit,
): Promise<{ changed: boolean }> {
  const secret = await readDatabaseSecret(stack.stateDir, environment.databaseUser);
  if (!secret || secret.database !== environment.databaseName) {
    throw missing('CREATE_DATABASE', `the agent holds no database password for ${environment.databaseUser}`);
  }
  kit.secret(secret.password);
  const existing = await readIfExists(layout.sharedWpConfig);
  const salts = existing === null ? undefined : saltsOf(existing);
  for (const salt of Object.values(salts ?? {})) kit.secret(salt);
  const content = renderWpConfig({
    dbName: environment.databaseName,
    dbUser: environment.databaseUser,
    dbPassword: secret.password,
    dbHost: stack.database.host,
    redis: { prefix: environment.redisPrefix, host: stack.redis.host, port: stack.redis.port },
    ...(salts ? { salts } : {}),
  });
  if (!salts) {
    const fresh = saltsOf(content);
    for (const salt of Object.values(fresh ?? {})) kit.secret(salt);
  }
  const info = await lstat(layout.sharedWpConfig).catch(() => undefined);
  if (
    existing === content &&
    info?.isFile() &&
    info.uid === user.uid &&
    info.gid === user.gid &&
    (info.mode & 0o777) === 0o600
  ) {
    return { changed: false };
  }
  await writeFileAtomically(layout.sharedWpConfig, content, 0o600, { uid: user.uid, gid: user.gid });
  return { changed: true };
}

export interface WpRunOptions {
  /** Forward WP-CLI's output to the job log (default true). */
  logOutput?: boolean;
  timeoutMs?: number;
  /** Resolve with the result even when WP-CLI failed. */
  allowFailure?: boolean;
  path?: string;
}

/** `wp --path=<current> <args>` as the environment's user; throws `wp_cli_error` on failure. */
export async function runWp(
  stack: NodeStack,
  layout: EnvironmentLayout,
  user: LinuxUser,
  kit: HandlerKit,
  args: readonly string[],
  options: WpRunOptions = {},
): Promise<RunResult> {
  if (user.uid === 0 || user.gid === 0) throw new Error('WP-CLI never runs as root');
  const invocation = wpCliInvocation(stack.wp, layout, args, options.path ? { path: options.path } : {});
  const result = await kit.context.exec({
    ...invocation,
    uid: user.uid,
    gid: user.gid,
    cwd: layout.root,
    timeoutMs: options.timeoutMs ?? 300_000,
    maxOutputBytes: 1024 * 1024,
    logOutput: options.logOutput ?? true,
  });
  kit.checkCancelled();
  if (result.exitCode !== 0 && !options.allowFailure) {
    throw wpCliError(result, `wp ${args.slice(0, 2).join(' ')}`);
  }
  return result;
}

/** Reads a file only when it is a regular file (never through a link). */
export async function readRegularFile(file: string): Promise<string | undefined> {
  const info = await lstat(file).catch(() => undefined);
  if (!info?.isFile()) return undefined;
  return readFile(file, 'utf8');
}
