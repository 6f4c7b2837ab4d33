// `environment_step`: one named step of setting up an environment on this node, or (with `undo`)
// taking it back. Every step is idempotent: doing one that is done succeeds and changes nothing;
// undoing one that is not done succeeds too. The control plane sends them in this order and undoes
// them newest first (README "Environment steps" says what each writes where):
//
//   CREATE_USER → CREATE_LAYOUT → CREATE_PHP_POOL → CREATE_DATABASE → INSTALL_CORE →
//   WRITE_WP_CONFIG → INSTALL_WORDPRESS → INSTALL_CRON
import { lstat, readdir, rm, rmdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type EnvironmentStep, EnvironmentStepKind } from '@wpcp/shared/agent-protocol';
import {
  applyConfigAtomically,
  commandCheck,
  commandReload,
  readIfExists,
  writeFileAtomically,
} from '../provisioning/atomic-config.ts';
import { renderCronFile } from '../provisioning/cron.ts';
import {
  parseSiteUrl,
  type ValidEnvironment,
  validateAdminEmail,
  validateAdminUser,
  validateEnvironmentSpec,
  validateSiteTitle,
} from '../provisioning/environment-spec.ts';
import { invalidArgument, ProvisioningError } from '../provisioning/errors.ts';
import {
  createLayout,
  currentRelease,
  type EnvironmentLayout,
  linkSharedIntoRelease,
  releasePath,
  removeLayout,
  switchCurrent,
} from '../provisioning/layout.ts';
import {
  COMMENT_PREFIX,
  createLinuxUser,
  deleteLinuxUser,
  lookupLinuxUser,
} from '../provisioning/linux-user.ts';
import { ensureMagicLoginPlugin } from '../provisioning/magic-login-plugin.ts';
import {
  accountExists,
  createDatabaseAndUser,
  type DatabaseAccount,
  dropAllTables,
  dropDatabaseAndUser,
  ensureDatabaseAndUser,
  generateDatabasePassword,
} from '../provisioning/mariadb.ts';
import { renderPhpFpmPool } from '../provisioning/php-fpm-pool.ts';
import { readDatabaseSecret, removeDatabaseSecret, writeDatabaseSecret } from '../provisioning/secrets.ts';
import { endProcessesOfUser } from '../provisioning/user-processes.ts';
import { installCore, readWordPressVersion, removeCoreStaging } from '../provisioning/wordpress-core.ts';
import { wpCliError } from '../provisioning/wp-cli.ts';
import {
  cronFilePath,
  isDirectory,
  layoutOf,
  missing,
  poolFilePath,
  poolSocketPath,
  requireCurrent,
  requireLayout,
  requireUser,
  runWp,
  webGroupId,
  writeWpConfig,
} from './environment-support.ts';
import { type HandlerKit, handle } from './handler-kit.ts';
import type { NodeStack } from './node-stack.ts';
import type { CommandHandler } from './types.ts';

/** The release INSTALL_CORE makes (later deploys add their own). */
export const INITIAL_RELEASE = 'initial';

interface InstallWordPressInput {
  siteUrl: string;
  siteTitle: string;
  adminUser: string;
  adminEmail: string;
}

export interface StepInput {
  environment: ValidEnvironment;
  kind: EnvironmentStepKind;
  undo: boolean;
  /** CREATE_LAYOUT undo: remove backups/ too (deleting with purge_backups). */
  purgeBackups: boolean;
  install?: InstallWordPressInput;
}

interface StepRun {
  stack: NodeStack;
  environment: ValidEnvironment;
  layout: EnvironmentLayout;
  input: StepInput;
  kit: HandlerKit;
}

interface StepDefinition {
  /** The name in progress messages and logs. */
  name: string;
  run: (step: StepRun) => Promise<Record<string, unknown>>;
  undo: (step: StepRun) => Promise<Record<string, unknown>>;
}

/** The validation phase: everything the step will use, checked before anything is done. */
export function validateEnvironmentStep(payload: EnvironmentStep): StepInput {
  const environment = validateEnvironmentSpec(payload.environment);
  if (STEPS[payload.kind] === undefined) {
    throw invalidArgument(`unknown environment step kind ${payload.kind}`);
  }
  const input: StepInput = {
    environment,
    kind: payload.kind,
    undo: payload.undo,
    purgeBackups: payload.purgeBackups,
  };
  if (payload.kind === EnvironmentStepKind.INSTALL_WORDPRESS && !payload.undo) {
    input.install = {
      siteUrl: parseSiteUrl(payload.siteUrl, 'site_url').url,
      siteTitle: validateSiteTitle(payload.siteTitle),
      adminUser: validateAdminUser(payload.adminUser),
      adminEmail: validateAdminEmail(payload.adminEmail),
    };
  }
  return input;
}

export function environmentStepHandler(stack: NodeStack): CommandHandler<EnvironmentStep> {
  return (payload, context) =>
    handle(
      context,
      () => validateEnvironmentStep(payload),
      async (input, kit) => {
        const definition = STEPS[input.kind] as StepDefinition;
        const name = `${input.undo ? 'undo-' : ''}${definition.name}`;
        const layout = layoutOf(stack, input.environment);
        kit.progress(name, 0, `${name} for ${input.environment.name}`);
        kit.log(`${name}: ${input.environment.name}`);
        const step: StepRun = { stack, environment: input.environment, layout, input, kit };
        const output = input.undo ? await definition.undo(step) : await definition.run(step);
        kit.progress(name, 100, 'done');
        return { step: name, environment: input.environment.name, ...output };
      },
    );
}

// ---------------------------------------------------------------------------------------------
// CREATE_USER
// ---------------------------------------------------------------------------------------------

async function createUser({ stack, environment, layout }: StepRun) {
  const user = await stack.locks.users.run(() =>
    createLinuxUser(
      { name: environment.systemUser, home: layout.root, environment: environment.name },
      stack.linuxUserTools,
    ),
  );
  return { linux_user: user.name, uid: user.uid, gid: user.gid };
}

async function deleteUser({ stack, environment, kit }: StepRun) {
  const user = await lookupLinuxUser(environment.systemUser, stack.linuxUserTools);
  if (!user) return { removed: false };
  if (user.comment !== `${COMMENT_PREFIX}${environment.name}` || user.uid === 0) {
    // Not the account CREATE_USER made for this environment (it failed with linux_user_exists):
    // not this step's to take back.
    kit.log(`left the Linux user ${user.name} alone: it is not wpcp's account for ${environment.name}`);
    return { removed: false };
  }
  // userdel refuses a user with processes: PHP-FPM workers still winding down, a cron run.
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const ended = await endProcessesOfUser(user.uid);
    if (ended > 0) kit.log(`ended ${ended} process(es) still running as ${user.name}`);
    try {
      await stack.locks.users.run(() => deleteLinuxUser(environment.systemUser, stack.linuxUserTools));
      return { removed: true };
    } catch (err) {
      lastError = err;
      if (err instanceof ProvisioningError && err.code === 'invalid_argument') throw err;
      await sleep(200 * (attempt + 1));
    }
  }
  throw lastError;
}

// ---------------------------------------------------------------------------------------------
// CREATE_LAYOUT
// ---------------------------------------------------------------------------------------------

async function createLayoutStep({ stack, environment, layout }: StepRun) {
  const user = await requireUser(stack, environment);
  const webGid = await webGroupId(stack);
  await createLayout(layout, { uid: user.uid, gid: user.gid, webGid });
  return { root: layout.root };
}

async function removeLayoutStep({ layout, kit, input }: StepRun) {
  if (!(await isDirectory(layout.root))) return { removed: false };
  await removeCoreStaging(layout);
  await removeLayout(layout, { keepBackups: !input.purgeBackups });
  // backups/ stays when it holds backups (deleting an environment keeps them); an empty one goes,
  // and so does the root once nothing else is in it.
  const backups = await readdir(layout.backups).catch(() => [] as string[]);
  if (backups.length === 0) await rmdir(layout.backups).catch(() => {});
  const left = await readdir(layout.root).catch(() => [] as string[]);
  if (left.length === 0) {
    await rmdir(layout.root);
    return { removed: true, kept_backups: false };
  }
  kit.log(`kept ${layout.root}: it still holds ${left.join(', ')}`);
  return { removed: true, kept_backups: backups.length > 0, kept: left };
}

// ---------------------------------------------------------------------------------------------
// CREATE_PHP_POOL
// ---------------------------------------------------------------------------------------------

function socketAccepts(socketPath: string): Promise<boolean> {
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

async function createPool({ stack, environment, layout, kit }: StepRun) {
  const user = await requireUser(stack, environment);
  await requireLayout(layout);
  const socket = poolSocketPath(stack, environment);
  const file = poolFilePath(stack, environment);
  const content = renderPhpFpmPool({
    name: environment.name,
    user: user.name,
    group: user.name,
    socketPath: socket,
    listenOwner: stack.webUser,
    listenGroup: stack.webUser,
    root: layout.root,
    tmpDir: layout.tmp,
    errorLog: path.join(layout.logs, 'php-error.log'),
  });
  const { changed } = await applyConfigAtomically({
    path: file,
    content,
    check: commandCheck(stack.phpFpm.check),
    reload: commandReload(stack.phpFpm.reload),
    lock: stack.locks.phpFpm,
  });
  // A reload returns before PHP-FPM has re-read its pools: wait for this pool's socket.
  const deadline = Date.now() + stack.poolReadyTimeoutMs;
  while (!(await socketAccepts(socket))) {
    kit.checkCancelled();
    if (Date.now() > deadline) {
      throw new ProvisioningError(
        'php_fpm_pool_not_ready',
        `PHP-FPM did not open ${socket} within ${stack.poolReadyTimeoutMs} ms after the reload`,
      );
    }
    await sleep(50);
  }
  return { pool_file: file, socket, changed };
}

async function removePool({ stack, environment }: StepRun) {
  const file = poolFilePath(stack, environment);
  const socket = poolSocketPath(stack, environment);
  const { changed } = await applyConfigAtomically({
    path: file,
    content: null,
    check: commandCheck(stack.phpFpm.check),
    reload: commandReload(stack.phpFpm.reload),
    lock: stack.locks.phpFpm,
  });
  const info = await lstat(socket).catch(() => undefined);
  if (info?.isSocket()) await unlink(socket).catch(() => {});
  return { removed: changed };
}

// ---------------------------------------------------------------------------------------------
// CREATE_DATABASE
// ---------------------------------------------------------------------------------------------

function accountOf(stack: NodeStack, environment: ValidEnvironment): DatabaseAccount {
  return {
    database: environment.databaseName,
    user: environment.databaseUser,
    host: stack.database.accountHost,
  };
}

async function createDatabase({ stack, environment, kit }: StepRun) {
  const account = accountOf(stack, environment);
  const held = await readDatabaseSecret(stack.stateDir, environment.databaseUser);
  if (held && held.database === environment.databaseName) {
    // Made by this agent before (a retried step, or one that stopped half-way): complete it.
    kit.secret(held.password);
    const exists = await accountExists(stack.database.admin, account);
    if (!exists.database || !exists.user) {
      await ensureDatabaseAndUser(stack.database.admin, account, held.password);
      return { database: account.database, user: account.user, changed: true };
    }
    return { database: account.database, user: account.user, changed: false };
  }
  const password = generateDatabasePassword();
  kit.secret(password);
  const exists = await accountExists(stack.database.admin, account);
  if (exists.database) {
    throw new ProvisioningError(
      'database_exists',
      `database ${account.database} already exists and is not this agent's`,
    );
  }
  if (exists.user) {
    throw new ProvisioningError(
      'database_user_exists',
      `database user ${account.user} already exists and is not this agent's`,
    );
  }
  // The password is kept before the account exists: a crash in between cannot lose it.
  await writeDatabaseSecret(stack.stateDir, { database: account.database, user: account.user, password });
  try {
    await createDatabaseAndUser(stack.database.admin, account, password);
  } catch (err) {
    await removeDatabaseSecret(stack.stateDir, account.user);
    throw err;
  }
  return { database: account.database, user: account.user, changed: true };
}

async function dropDatabase({ stack, environment, kit }: StepRun) {
  const account = accountOf(stack, environment);
  const held = await readDatabaseSecret(stack.stateDir, environment.databaseUser);
  if (!held) {
    // Not made by this agent (or already dropped): a database of that name is someone else's.
    const exists = await accountExists(stack.database.admin, account);
    if (exists.database || exists.user) {
      kit.log(`left ${account.database} / ${account.user} alone: this agent did not create them`);
    }
    return { dropped: false };
  }
  await dropDatabaseAndUser(stack.database.admin, account);
  await removeDatabaseSecret(stack.stateDir, account.user);
  return { dropped: true };
}

// ---------------------------------------------------------------------------------------------
// INSTALL_CORE
// ---------------------------------------------------------------------------------------------

async function installCoreStep({ stack, environment, layout, kit }: StepRun) {
  const user = await requireUser(stack, environment);
  await requireLayout(layout);
  const current = await currentRelease(layout);
  if (current !== undefined) {
    const version = await readWordPressVersion(releasePath(layout, current));
    if (version) return { wordpress_version: version, release: current, changed: false };
  }
  kit.log(
    stack.wpCoreSource === ''
      ? 'downloading WordPress core (wp core download)'
      : `copying WordPress core from ${stack.wpCoreSource}`,
  );
  const version = await installCore({
    layout,
    releaseId: INITIAL_RELEASE,
    owner: { uid: user.uid, gid: user.gid },
    source: stack.wpCoreSource,
    wp: stack.wp,
    exec: (options) => kit.context.exec(options),
    log: (line) => kit.log(line),
  });
  await linkSharedIntoRelease(layout, INITIAL_RELEASE);
  await switchCurrent(layout, INITIAL_RELEASE);
  kit.log(`WordPress ${version} in ${releasePath(layout, INITIAL_RELEASE)}`);
  return { wordpress_version: version, release: INITIAL_RELEASE, changed: true };
}

async function removeCore({ layout }: StepRun) {
  if (!(await isDirectory(layout.root))) return { removed: false };
  const link = await lstat(layout.current).catch(() => undefined);
  const release = releasePath(layout, INITIAL_RELEASE);
  const had = link !== undefined || (await isDirectory(release));
  if (link) await rm(layout.current, { force: true });
  await rm(release, { recursive: true, force: true });
  await removeCoreStaging(layout);
  return { removed: had };
}

// ---------------------------------------------------------------------------------------------
// WRITE_WP_CONFIG
// ---------------------------------------------------------------------------------------------

async function writeWpConfigStep({ stack, environment, layout, kit }: StepRun) {
  const user = await requireUser(stack, environment);
  await requireLayout(layout);
  const { changed } = await writeWpConfig(stack, environment, layout, user, kit);
  return { path: layout.sharedWpConfig, changed };
}

async function removeWpConfig({ layout }: StepRun) {
  const had = (await readIfExists(layout.sharedWpConfig).catch(() => null)) !== null;
  await rm(layout.sharedWpConfig, { force: true });
  return { removed: had };
}

// ---------------------------------------------------------------------------------------------
// INSTALL_WORDPRESS
// ---------------------------------------------------------------------------------------------

async function installWordPress({ stack, environment, layout, input, kit }: StepRun) {
  const install = input.install;
  if (!install)
    throw invalidArgument('INSTALL_WORDPRESS needs site_url, site_title, admin_user and admin_email');
  const user = await requireUser(stack, environment);
  await requireCurrent(layout);
  if ((await readIfExists(layout.sharedWpConfig)) === null) {
    throw missing('WRITE_WP_CONFIG', `${layout.sharedWpConfig} does not exist`);
  }
  // The must-use plugin behind magic login (create_magic_login ensures it again). Idempotent.
  await ensureMagicLoginPlugin(layout, { uid: user.uid, gid: user.gid });
  const installed = await runWp(stack, layout, user, kit, ['core', 'is-installed'], { allowFailure: true });
  if (installed.exitCode === 0) {
    kit.log('WordPress is already installed');
    return { url: install.siteUrl, changed: false };
  }
  // No --admin_password: WordPress generates one on the node, and --quiet keeps WP-CLI from
  // printing it. Nobody learns it (logins go through the control plane); it is never on a
  // command line, in a log or in a result. The output is not forwarded to the job log either.
  const result = await runWp(
    stack,
    layout,
    user,
    kit,
    [
      'core',
      'install',
      `--url=${install.siteUrl}`,
      `--title=${install.siteTitle}`,
      `--admin_user=${install.adminUser}`,
      `--admin_email=${install.adminEmail}`,
      '--skip-email',
      '--quiet',
    ],
    { logOutput: false, allowFailure: true },
  );
  const printable = (text: string) =>
    text
      .split('\n')
      .filter((line) => !/password/i.test(line))
      .join('\n');
  if (result.exitCode !== 0) {
    throw wpCliError(
      { ...result, stdout: printable(result.stdout), stderr: printable(result.stderr) },
      'wp core install',
    );
  }
  for (const line of printable(`${result.stdout}\n${result.stderr}`).split('\n')) {
    if (line.trim()) kit.context.log('stdout', line);
  }
  const check = await runWp(stack, layout, user, kit, ['core', 'is-installed'], { allowFailure: true });
  if (check.exitCode !== 0) {
    throw new ProvisioningError(
      'wp_cli_error',
      'wp core install ended without error but WordPress is not installed',
    );
  }
  return { url: install.siteUrl, admin_user: install.adminUser, changed: true };
}

async function uninstallWordPress({ stack, environment }: StepRun) {
  const held = await readDatabaseSecret(stack.stateDir, environment.databaseUser);
  if (!held) return { tables_dropped: 0 };
  const exists = await accountExists(stack.database.admin, accountOf(stack, environment));
  if (!exists.database) return { tables_dropped: 0 };
  return { tables_dropped: await dropAllTables(stack.database.admin, environment.databaseName) };
}

// ---------------------------------------------------------------------------------------------
// INSTALL_CRON
// ---------------------------------------------------------------------------------------------

async function installCron({ stack, environment, layout }: StepRun) {
  const user = await requireUser(stack, environment);
  await requireLayout(layout);
  const file = cronFilePath(stack, environment);
  const content = renderCronFile({ environment: environment.name, user: user.name, layout, wp: stack.wp });
  if ((await readIfExists(file)) === content) return { file, changed: false };
  await writeFileAtomically(file, content, 0o644);
  return { file, changed: true };
}

async function removeCron({ stack, environment }: StepRun) {
  const file = cronFilePath(stack, environment);
  const had = (await readIfExists(file)) !== null;
  await rm(file, { force: true });
  return { removed: had };
}

const STEPS: Readonly<Record<number, StepDefinition>> = {
  [EnvironmentStepKind.CREATE_USER]: { name: 'create-user', run: createUser, undo: deleteUser },
  [EnvironmentStepKind.CREATE_LAYOUT]: {
    name: 'create-layout',
    run: createLayoutStep,
    undo: removeLayoutStep,
  },
  [EnvironmentStepKind.CREATE_PHP_POOL]: { name: 'create-php-pool', run: createPool, undo: removePool },
  [EnvironmentStepKind.CREATE_DATABASE]: { name: 'create-database', run: createDatabase, undo: dropDatabase },
  [EnvironmentStepKind.INSTALL_CORE]: { name: 'install-core', run: installCoreStep, undo: removeCore },
  [EnvironmentStepKind.WRITE_WP_CONFIG]: {
    name: 'write-wp-config',
    run: writeWpConfigStep,
    undo: removeWpConfig,
  },
  [EnvironmentStepKind.INSTALL_WORDPRESS]: {
    name: 'install-wordpress',
    run: installWordPress,
    undo: uninstallWordPress,
  },
  [EnvironmentStepKind.INSTALL_CRON]: { name: 'install-cron', run: installCron, undo: removeCron },
};

/** The step names, in provisioning order. */
export const ENVIRONMENT_STEP_NAMES: readonly string[] = Object.values(STEPS).map((step) => step.name);
