// WP-Cron of one environment, run by the node's cron every minute as the environment's user
// (wp-config.php sets DISABLE_WP_CRON, so page views never run it):
//
//   /etc/cron.d/wpcp-<site>--<env>      root:root 0644
//
// cron runs the command line through /bin/sh, so every value in it is checked against a pattern
// of plain path characters first (no spaces, quotes, `%`, `$` or `;`): the line holds nothing a
// shell would interpret. `flock -n` skips a minute while the previous run is still going, and
// MAILTO="" keeps cron from mailing output.
import { invalidArgument } from './errors.ts';
import { assertSafeAbsolutePath, type EnvironmentLayout } from './layout.ts';
import { assertLinuxUserName } from './linux-user.ts';
import { environmentFileStem } from './names.ts';
import type { WpCliSettings } from './wp-cli.ts';

export const FLOCK = '/usr/bin/flock';

export interface CronFileOptions {
  environment: string;
  user: string;
  layout: EnvironmentLayout;
  wp: WpCliSettings;
  /** flock(1); default /usr/bin/flock (util-linux, always on Debian). */
  flock?: string;
}

/** The cron.d file name: no dot (cron ignores file names with one). */
export function cronFileName(environment: string): string {
  return environmentFileStem(environment);
}

export function renderCronFile(options: CronFileOptions): string {
  const { environment, user, layout, wp } = options;
  const name = cronFileName(environment);
  assertLinuxUserName(user);
  const flock = options.flock ?? FLOCK;
  for (const [what, value] of [
    ['flock', flock],
    ['wpCli', wp.wpCli],
    ['environment root', layout.root],
    ...(wp.phpCli === '' ? [] : [['phpCli', wp.phpCli] as const]),
  ] as const) {
    assertSafeAbsolutePath(value, what);
  }
  if (!/^[a-z0-9-]+$/.test(name)) throw invalidArgument('cron file name is not valid');
  const program = wp.phpCli === '' ? [wp.wpCli] : [wp.phpCli, wp.wpCli];
  const command = [
    flock,
    '-n',
    `${layout.tmp}/wp-cron.lock`,
    ...program,
    `--path=${layout.current}`,
    'cron',
    'event',
    'run',
    '--due-now',
    '--quiet',
  ].join(' ');
  return [
    `# Managed by the wpcp agent for environment ${environment}; changes are overwritten.`,
    '# WP-Cron every minute as the environment user (DISABLE_WP_CRON is set in wp-config.php).',
    'SHELL=/bin/sh',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'MAILTO=""',
    `HOME=${layout.root}`,
    `WP_CLI_CACHE_DIR=${layout.tmp}/wp-cli-cache`,
    `* * * * * ${user} ${command}`,
    '',
  ].join('\n');
}
