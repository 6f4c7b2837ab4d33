// `clone_environment`: a copy of one environment into another on this node. The target has been
// set up through CREATE_USER, CREATE_LAYOUT, CREATE_PHP_POOL and CREATE_DATABASE; this command
// then:
//
//   1. copies the source's current release into the target's releases/<same id> and points the
//      target's `current` at it: `tar -c` as the SOURCE user piped into `tar -x` as the TARGET user
//      (each side reads or writes only what its own user may; the copy belongs to the target);
//   2. copies shared/uploads the same way (not wp-config.php, which the target gets its own of,
//      and nothing else from shared/);
//   3. empties the target's database, then pipes `mariadb-dump <source db>` into
//      `mariadb <target db>` (two argv-spawned processes joined by a pipe, no shell);
//   4. writes the target's wp-config.php (its own database, password, salts, Redis prefix);
//   5. `wp search-replace <source_url> <target_url> --all-tables --precise` as the target user,
//      which rewrites serialized PHP data safely.
//
// Running it again redoes the copy (the same end state). The source is only read.
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, rename, rm } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import type { CloneEnvironment } from '@wpcp/shared/agent-protocol';
import type { RunResult } from '../exec/run.ts';
import { describeFailure } from '../provisioning/command.ts';
import {
  parseSiteUrl,
  type ValidEnvironment,
  validateEnvironmentSpec,
} from '../provisioning/environment-spec.ts';
import { invalidArgument, ProvisioningError } from '../provisioning/errors.ts';
import {
  currentRelease,
  type EnvironmentLayout,
  linkSharedIntoRelease,
  releasePath,
  switchCurrent,
} from '../provisioning/layout.ts';
import type { LinuxUser } from '../provisioning/linux-user.ts';
import { accountExists, dropAllTables } from '../provisioning/mariadb.ts';
import { readDatabaseSecret } from '../provisioning/secrets.ts';
import { readWordPressVersion } from '../provisioning/wordpress-core.ts';
import { parseReplacementCount } from '../provisioning/wp-cli.ts';
import {
  isDirectory,
  layoutOf,
  missing,
  requireCurrent,
  requireLayout,
  requireUser,
  runWp,
  writeWpConfig,
} from './environment-support.ts';
import type { HandlerKit } from './handler-kit.ts';
import { handle } from './handler-kit.ts';
import type { NodeStack } from './node-stack.ts';
import type { CommandHandler, ExecOptions } from './types.ts';

export const TAR = '/usr/bin/tar';
const COPY_TIMEOUT_MS = 2 * 60 * 60 * 1000;

interface CloneInput {
  source: ValidEnvironment;
  target: ValidEnvironment;
  sourceUrl: string;
  targetUrl: string;
}

export function validateCloneEnvironment(payload: CloneEnvironment): CloneInput {
  const source = validateEnvironmentSpec(payload.source, 'source');
  const target = validateEnvironmentSpec(payload.target, 'target');
  if (
    source.name === target.name ||
    source.systemUser === target.systemUser ||
    source.databaseName === target.databaseName ||
    source.databaseUser === target.databaseUser ||
    source.redisPrefix === target.redisPrefix
  ) {
    throw invalidArgument('source and target must be different environments (every name differs)');
  }
  return {
    source,
    target,
    sourceUrl: parseSiteUrl(payload.sourceUrl, 'source_url').url,
    targetUrl: parseSiteUrl(payload.targetUrl, 'target_url').url,
  };
}

/**
 * `first | second`: first's stdout piped into second's stdin. When either fails the other is
 * stopped; resolves with both results (the caller checks both exit codes).
 */
export async function pipeProcesses(
  kit: HandlerKit,
  first: ExecOptions,
  second: ExecOptions,
): Promise<[RunResult, RunResult]> {
  const pipe = new PassThrough({ highWaterMark: 1024 * 1024 });
  const stop = new AbortController();
  const stopOnFailure = (result: RunResult): RunResult => {
    if (result.exitCode !== 0) stop.abort();
    return result;
  };
  const results = await Promise.all([
    kit.context.exec({ ...first, stdoutTo: pipe, signal: stop.signal }).then(stopOnFailure),
    kit.context.exec({ ...second, stdin: pipe, signal: stop.signal }).then(stopOnFailure),
  ]);
  kit.checkCancelled();
  return results;
}

function failedPipe(
  what: string,
  results: [RunResult, RunResult],
  names: [string, string],
): ProvisioningError {
  const [first, second] = results;
  const broken = first.exitCode !== 0 && !first.cancelled ? 0 : 1;
  const result = results[broken] as RunResult;
  const output = result.stderr.trim().slice(-2_000);
  return new ProvisioningError(
    'clone_failed',
    `${what}: ${names[broken]} ${describeFailure(result)}${output ? `: ${output}` : ''}` +
      (second.exitCode !== 0 && broken === 0 ? ` (${names[1]} was stopped)` : ''),
  );
}

/** Copies the directory `from` (readable by `reader`) into the existing `to` (writable by `writer`). */
async function copyTree(
  kit: HandlerKit,
  what: string,
  from: { dir: string; user: LinuxUser },
  to: { dir: string; user: LinuxUser },
): Promise<void> {
  const results = await pipeProcesses(
    kit,
    {
      file: TAR,
      args: ['-c', '-f', '-', '-C', from.dir, '.'],
      uid: from.user.uid,
      gid: from.user.gid,
      timeoutMs: COPY_TIMEOUT_MS,
      maxOutputBytes: 64 * 1024,
    },
    {
      file: TAR,
      args: ['-x', '-f', '-', '-C', to.dir, '--no-same-owner'],
      uid: to.user.uid,
      gid: to.user.gid,
      timeoutMs: COPY_TIMEOUT_MS,
      maxOutputBytes: 64 * 1024,
    },
  );
  if (results[0].exitCode !== 0 || results[1].exitCode !== 0) {
    throw failedPipe(what, results, ['tar -c (as the source user)', 'tar -x (as the target user)']);
  }
}

async function copyRelease(
  kit: HandlerKit,
  release: string,
  source: { layout: EnvironmentLayout; user: LinuxUser },
  target: { layout: EnvironmentLayout; user: LinuxUser },
): Promise<void> {
  const staging = `${target.layout.releases}/.wpcp-clone-${randomBytes(6).toString('hex')}`;
  await mkdir(staging, { mode: 0o755 });
  try {
    await chown(staging, target.user.uid, target.user.gid);
    await chmod(staging, 0o755);
    await copyTree(
      kit,
      `copying release ${release}`,
      { dir: releasePath(source.layout, release), user: source.user },
      { dir: staging, user: target.user },
    );
    const destination = releasePath(target.layout, release);
    await rm(destination, { recursive: true, force: true });
    await rename(staging, destination);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  await linkSharedIntoRelease(target.layout, release);
  await switchCurrent(target.layout, release);
}

async function copyDatabase(
  kit: HandlerKit,
  stack: NodeStack,
  source: ValidEnvironment,
  target: ValidEnvironment,
) {
  const results = await pipeProcesses(
    kit,
    {
      file: stack.database.dump.file,
      args: [
        ...stack.database.dump.args,
        '--single-transaction',
        '--quick',
        '--hex-blob',
        '--default-character-set=utf8mb4',
        '--no-tablespaces',
        source.databaseName,
      ],
      timeoutMs: COPY_TIMEOUT_MS,
      maxOutputBytes: 64 * 1024,
    },
    {
      file: stack.database.admin.file,
      args: [...stack.database.admin.args, '--batch', '--default-character-set=utf8mb4', target.databaseName],
      timeoutMs: COPY_TIMEOUT_MS,
      maxOutputBytes: 64 * 1024,
    },
  );
  if (results[0].exitCode !== 0 || results[1].exitCode !== 0) {
    throw failedPipe('copying the database', results, ['mariadb-dump', 'mariadb (import)']);
  }
}

export function cloneEnvironmentHandler(stack: NodeStack): CommandHandler<CloneEnvironment> {
  return (payload, context) =>
    handle(
      context,
      () => validateCloneEnvironment(payload),
      async ({ source, target, sourceUrl, targetUrl }, kit) => {
        const sourceLayout = layoutOf(stack, source);
        const targetLayout = layoutOf(stack, target);
        const sourceUser = await requireUser(stack, source);
        const targetUser = await requireUser(stack, target);
        await requireCurrent(sourceLayout);
        const release = await currentRelease(sourceLayout);
        if (release === undefined)
          throw missing('INSTALL_CORE', `the source ${source.name} has no current release`);
        await requireLayout(targetLayout);
        const targetSecret = await readDatabaseSecret(stack.stateDir, target.databaseUser);
        if (!targetSecret)
          throw missing(
            'CREATE_DATABASE',
            `the target database ${target.databaseName} was not created by this agent`,
          );
        kit.secret(targetSecret.password);
        const sourceDb = await accountExists(stack.database.admin, {
          database: source.databaseName,
          user: source.databaseUser,
          host: stack.database.accountHost,
        });
        if (!sourceDb.database)
          throw missing('CREATE_DATABASE', `the source database ${source.databaseName} does not exist`);

        kit.progress('copy-files', 0, `release ${release} of ${source.name}`);
        await copyRelease(
          kit,
          release,
          { layout: sourceLayout, user: sourceUser },
          { layout: targetLayout, user: targetUser },
        );
        kit.checkCancelled();
        if (await isDirectory(sourceLayout.sharedUploads)) {
          kit.progress('copy-files', 50, 'uploads');
          await copyTree(
            kit,
            'copying uploads',
            { dir: sourceLayout.sharedUploads, user: sourceUser },
            { dir: targetLayout.sharedUploads, user: targetUser },
          );
        }
        kit.progress('copy-files', 100, 'done');

        kit.progress('copy-database', 0, `${source.databaseName} → ${target.databaseName}`);
        const dropped = await dropAllTables(stack.database.admin, target.databaseName);
        if (dropped > 0) kit.log(`emptied ${target.databaseName} (${dropped} tables) before the copy`);
        await copyDatabase(kit, stack, source, target);
        kit.progress('copy-database', 100, 'done');

        kit.progress('configure', 0, 'wp-config.php');
        await writeWpConfig(stack, target, targetLayout, targetUser, kit);
        let replacements: number | undefined = 0;
        if (sourceUrl !== targetUrl) {
          const result = await runWp(stack, targetLayout, targetUser, kit, [
            'search-replace',
            sourceUrl,
            targetUrl,
            '--all-tables',
            '--precise',
          ]);
          replacements = parseReplacementCount(result.stdout);
        }
        kit.progress('configure', 100, 'done');
        return {
          source: source.name,
          target: target.name,
          release,
          wordpress_version: (await readWordPressVersion(releasePath(targetLayout, release))) ?? null,
          source_url: sourceUrl,
          target_url: targetUrl,
          replacements: replacements ?? null,
        };
      },
    );
}
