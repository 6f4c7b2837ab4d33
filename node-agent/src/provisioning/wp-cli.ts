// The WP-CLI adapter: how the agent runs `wp` for an environment.
//
// - Always as the environment's Linux user (its uid and gid; never root, never `--allow-root`),
//   with `--path=<environment>/current` so WP-CLI never guesses which WordPress it is in.
// - Through PHP explicitly when a PHP CLI is configured (`php /usr/local/bin/wp ...`), so the
//   interpreter does not depend on the PATH of the child.
// - With a small explicit environment: HOME (the environment root) and WP-CLI's cache in the
//   environment's tmp/, so nothing is written to root's or a shared home.
// - Failures: a non-zero exit becomes `wp_cli_error` with WP-CLI's `Error:` line as the message
//   (or the last lines of its output when it printed none); JSON output is parsed tolerantly
//   (PHP notices before the document, empty output meaning an empty list).
import type { RunResult } from '../exec/run.ts';
import { describeFailure } from './command.ts';
import { invalidArgument, ProvisioningError } from './errors.ts';
import type { EnvironmentLayout } from './layout.ts';

export interface WpCliSettings {
  /** The WP-CLI program (a phar or the test double). */
  wpCli: string;
  /** The PHP CLI that runs it; '' runs `wpCli` directly (through its shebang). */
  phpCli: string;
}

export interface WpCliInvocation {
  file: string;
  args: string[];
  env: Record<string, string>;
}

/** Arguments WP-CLI must never get from the agent. */
const FORBIDDEN = /^--(allow-root|path|ssh|http|exec|require)(=|$)/;

/**
 * The argv and environment of `wp <args...> --path=<path>` for an environment. `args` are WP-CLI
 * words and `--key=value` options, each one argv entry (never split, never interpreted by a shell).
 */
export function wpCliInvocation(
  settings: WpCliSettings,
  layout: EnvironmentLayout,
  args: readonly string[],
  options: { path?: string } = {},
): WpCliInvocation {
  for (const arg of args) {
    if (FORBIDDEN.test(arg)) throw invalidArgument(`the agent never passes ${arg.split('=')[0]} to WP-CLI`);
  }
  const wpArgs = [`--path=${options.path ?? layout.current}`, ...args];
  return {
    file: settings.phpCli === '' ? settings.wpCli : settings.phpCli,
    args: settings.phpCli === '' ? wpArgs : [settings.wpCli, ...wpArgs],
    env: {
      HOME: layout.root,
      WP_CLI_CACHE_DIR: `${layout.tmp}/wp-cli-cache`,
      WP_CLI_DISABLE_AUTO_CHECK_UPDATE: '1',
    },
  };
}

/** The message of a failed WP-CLI run: its `Error:` lines, else the tail of its output. */
export function wpCliErrorMessage(result: RunResult, what: string): string {
  const lines = `${result.stderr}\n${result.stdout}`.split('\n').map((line) => line.trim());
  const errors = lines.filter((line) => line.startsWith('Error:')).map((line) => line.slice(6).trim());
  const detail =
    errors.length > 0
      ? errors.join(' ')
      : lines
          .filter((line) => line.length > 0)
          .slice(-5)
          .join(' ');
  return `${what} ${describeFailure(result)}${detail ? `: ${detail}` : ''}`.slice(0, 4_000);
}

export function wpCliError(result: RunResult, what: string): ProvisioningError {
  return new ProvisioningError('wp_cli_error', wpCliErrorMessage(result, what));
}

/**
 * WP-CLI's `--format=json` output: PHP notices or warnings may come before the document, and an
 * empty output means an empty list. Throws `wp_cli_error` when no JSON document is found.
 */
export function parseWpCliJson(stdout: string): unknown {
  const text = stdout.trim();
  if (text === '') return [];
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Look for the document on its own line after the noise.
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const candidate = lines.slice(i).join('\n').trim();
      if (!/^[[{"]|^(true|false|null|-?[0-9])/.test(candidate)) continue;
      try {
        return JSON.parse(candidate) as unknown;
      } catch {
        // keep looking
      }
    }
    throw new ProvisioningError('wp_cli_error', `WP-CLI printed no JSON: ${text.slice(0, 500)}`);
  }
}

/** `Success: Made 12 replacements.` → 12 (undefined when WP-CLI said otherwise). */
export function parseReplacementCount(stdout: string): number | undefined {
  const match = /Success: Made ([0-9]+) replacements?/.exec(stdout);
  return match ? Number(match[1]) : undefined;
}
