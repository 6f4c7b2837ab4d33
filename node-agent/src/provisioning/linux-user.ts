// The Linux user and group of one environment: a system account with its own primary group, its
// home at the environment root (not created by useradd: the layout makes it, without /etc/skel
// files), no login shell, and a comment that marks it as wpcp's. deleteLinuxUser only removes an
// account carrying that mark, so a wrong name can never delete a stranger's account.
import { readFile } from 'node:fs/promises';
import { type Command, runChecked, runCommand } from './command.ts';
import { invalidArgument, ProvisioningError } from './errors.ts';
import { assertSafeAbsolutePath } from './layout.ts';

export interface LinuxUserSpec {
  name: string;
  /** The environment root. */
  home: string;
  /** Environment name, recorded in the account's comment. */
  environment: string;
}

export interface LinuxUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  comment: string;
  shell: string;
}

export interface LinuxUserTools {
  useradd: string;
  userdel: string;
  groupdel: string;
  /** passwd and group databases, read directly (NSS sources other than files are not used for system accounts here). */
  passwdFile: string;
  groupFile: string;
}

export const DEFAULT_LINUX_USER_TOOLS: LinuxUserTools = {
  useradd: '/usr/sbin/useradd',
  userdel: '/usr/sbin/userdel',
  groupdel: '/usr/sbin/groupdel',
  passwdFile: '/etc/passwd',
  groupFile: '/etc/group',
};

const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const ENVIRONMENT = /^[a-z0-9-]{1,64}$/;
export const NOLOGIN_SHELL = '/usr/sbin/nologin';
export const COMMENT_PREFIX = 'wpcp environment ';

export function assertLinuxUserName(name: string): void {
  if (!USER_NAME.test(name)) {
    throw invalidArgument(
      `Linux user name must be 1-32 of [a-z0-9_-], starting with a letter or _: ${JSON.stringify(name)}`,
    );
  }
}

export function useraddArgs(spec: LinuxUserSpec): string[] {
  assertLinuxUserName(spec.name);
  assertSafeAbsolutePath(spec.home, 'home');
  if (!ENVIRONMENT.test(spec.environment)) throw invalidArgument('environment name is not valid');
  return [
    '--system',
    '--user-group',
    '--no-create-home',
    '--home-dir',
    spec.home,
    '--shell',
    NOLOGIN_SHELL,
    '--comment',
    `${COMMENT_PREFIX}${spec.environment}`,
    spec.name,
  ];
}

/** The passwd entry of `name`, or undefined. */
export async function lookupLinuxUser(
  name: string,
  tools: LinuxUserTools = DEFAULT_LINUX_USER_TOOLS,
): Promise<LinuxUser | undefined> {
  assertLinuxUserName(name);
  const passwd = await readFile(tools.passwdFile, 'utf8');
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields[0] !== name || fields.length < 7) continue;
    return {
      name,
      uid: Number(fields[2]),
      gid: Number(fields[3]),
      comment: fields[4] ?? '',
      home: fields[5] ?? '',
      shell: fields[6] ?? '',
    };
  }
  return undefined;
}

async function groupExists(name: string, tools: LinuxUserTools): Promise<boolean> {
  const group = await readFile(tools.groupFile, 'utf8');
  return group.split('\n').some((line) => line.split(':')[0] === name);
}

/** The gid of a group (e.g. www-data, the web group), or undefined. */
export async function lookupGroupId(
  name: string,
  tools: LinuxUserTools = DEFAULT_LINUX_USER_TOOLS,
): Promise<number | undefined> {
  const group = await readFile(tools.groupFile, 'utf8');
  for (const line of group.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields[2] !== undefined) return Number(fields[2]);
  }
  return undefined;
}

/**
 * Creates the account. An account of that name that wpcp made for the same environment and home
 * is taken as done (a retried step); any other existing account is `linux_user_exists`.
 */
export async function createLinuxUser(
  spec: LinuxUserSpec,
  tools: LinuxUserTools = DEFAULT_LINUX_USER_TOOLS,
): Promise<LinuxUser> {
  const args = useraddArgs(spec);
  const existing = await lookupLinuxUser(spec.name, tools);
  if (existing) {
    if (existing.comment === `${COMMENT_PREFIX}${spec.environment}` && existing.home === spec.home)
      return existing;
    throw new ProvisioningError('linux_user_exists', `a Linux user named ${spec.name} already exists`);
  }
  if (await groupExists(spec.name, tools)) {
    throw new ProvisioningError('linux_user_exists', `a Linux group named ${spec.name} already exists`);
  }
  await runChecked({ file: tools.useradd, args }, { timeoutMs: 30_000 });
  const created = await lookupLinuxUser(spec.name, tools);
  if (!created)
    throw new ProvisioningError(
      'command_failed',
      `useradd succeeded but ${spec.name} is not in ${tools.passwdFile}`,
    );
  return created;
}

/**
 * Removes the account and its group (the undo of createLinuxUser); files are the layout's to
 * remove. Idempotent. Refuses an account wpcp did not make. Stop the environment's PHP-FPM pool
 * first: userdel fails while processes run as the user.
 */
export async function deleteLinuxUser(
  name: string,
  tools: LinuxUserTools = DEFAULT_LINUX_USER_TOOLS,
): Promise<void> {
  const existing = await lookupLinuxUser(name, tools);
  if (!existing) return;
  if (!existing.comment.startsWith(COMMENT_PREFIX)) {
    throw invalidArgument(`refusing to delete ${name}: not an account made by wpcp`);
  }
  const command: Command = { file: tools.userdel, args: [name] };
  await runChecked(command, { timeoutMs: 30_000 });
  // userdel removes the user's own group with USERGROUPS_ENAB (Debian's default); make sure.
  if (await groupExists(name, tools)) {
    const result = await runCommand({ file: tools.groupdel, args: [name] }, { timeoutMs: 30_000 });
    if (result.exitCode !== 0 && (await groupExists(name, tools))) {
      throw new ProvisioningError('command_failed', `groupdel ${name} failed: ${result.stderr.trim()}`);
    }
  }
}
