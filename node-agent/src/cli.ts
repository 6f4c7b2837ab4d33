// Command-line parsing: pure (no I/O), so every usage error is tested without a process.
import path from 'node:path';
import { parseArgs } from 'node:util';

export const USAGE = {
  main: 'usage: wpcp-agent <enroll|run> [options] | wpcp-agent --help | wpcp-agent --version',
  enroll:
    'usage: wpcp-agent enroll --server HOST:PORT (--token TOKEN | --token-file FILE) [--state-dir DIR] [--force]',
  run: 'usage: wpcp-agent run [--state-dir DIR] [--config FILE]',
} as const;

export const HELP = `wpcp-agent: the wpcp node agent

${USAGE.main}

Commands:
  enroll    Join this node to a control plane with a one-time join token. Pins the control
            plane's CA from the token, makes the node's key, obtains its client certificate and
            stores everything in the state directory (0700).
              --server HOST:PORT   the control plane's gRPC listener; HOST must be one of the
                                   names in its certificate (WPCP_GRPC_PUBLIC_NAMES)
              --token TOKEN        the join token (wpcp1.<secret>.<cahash>); visible in the process
                                   list while enrolling: prefer --token-file on shared machines
              --token-file FILE    read the token from FILE ("-" for standard input)
              --state-dir DIR      default /var/lib/wpcp-agent
              --force              enroll again over an enrolled state directory

  run       Connect to the control plane and run its commands, in the foreground, until SIGTERM
            or SIGINT. Logs JSON lines on standard output.
              --state-dir DIR      default /var/lib/wpcp-agent (or WPCP_AGENT_STATE_DIR)
              --config FILE        JSON settings file (or WPCP_AGENT_CONFIG); see the README for
                                   every setting and its WPCP_AGENT_* environment variable

Options:
  -h, --help       show this help (also after a command)
  -V, --version    print the agent version

Exit status: 0 success, 1 failure, 2 usage error.
`;

export type CliCommand =
  | { kind: 'help'; topic: 'main' | 'enroll' | 'run' }
  | { kind: 'version' }
  | {
      kind: 'enroll';
      server: string;
      token: { value: string } | { file: string };
      stateDir: string;
      force: boolean;
    }
  | { kind: 'run'; stateDir?: string; configFile?: string };

export class UsageError extends Error {
  readonly usage: string;

  constructor(message: string, usage: string) {
    super(message);
    this.name = 'UsageError';
    this.usage = usage;
  }
}

function parse(
  args: string[],
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
  usage: string,
): Record<string, string | boolean | undefined> {
  try {
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals: true });
    if (positionals.length > 0) {
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`, usage);
    }
    return values as Record<string, string | boolean | undefined>;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    // Node's messages are clear ("Unknown option '--x'", "Option '--server <value>' argument missing").
    const message = (err as Error).message.split('\n')[0]?.replace(/\. To specify a positional.*$/, '') ?? '';
    throw new UsageError(message, usage);
  }
}

function absolute(dir: string | undefined, flag: string, usage: string): string | undefined {
  if (dir === undefined) return undefined;
  if (dir === '' || dir.includes('\0')) throw new UsageError(`${flag} needs a directory`, usage);
  return path.resolve(dir);
}

/** Parse `process.argv.slice(2)`. Throws UsageError (exit status 2). */
export function parseCli(argv: readonly string[], defaultStateDir = '/var/lib/wpcp-agent'): CliCommand {
  const [first, ...rest] = argv;
  if (first === undefined) throw new UsageError('missing command', USAGE.main);
  if (first === '--help' || first === '-h' || first === 'help') return { kind: 'help', topic: 'main' };
  if (first === '--version' || first === '-V') return { kind: 'version' };
  const help = { type: 'boolean', short: 'h' } as const;

  switch (first) {
    case 'enroll': {
      const values = parse(
        rest,
        {
          server: { type: 'string' },
          token: { type: 'string' },
          'token-file': { type: 'string' },
          'state-dir': { type: 'string' },
          force: { type: 'boolean' },
          help,
        },
        USAGE.enroll,
      );
      if (values.help) return { kind: 'help', topic: 'enroll' };
      const server = values.server as string | undefined;
      if (!server) throw new UsageError('--server is required', USAGE.enroll);
      const token = values.token as string | undefined;
      const tokenFile = values['token-file'] as string | undefined;
      if (token !== undefined && tokenFile !== undefined) {
        throw new UsageError('give either --token or --token-file, not both', USAGE.enroll);
      }
      if (!token && !tokenFile) throw new UsageError('--token or --token-file is required', USAGE.enroll);
      return {
        kind: 'enroll',
        server,
        token: token ? { value: token } : { file: tokenFile as string },
        stateDir:
          absolute(values['state-dir'] as string | undefined, '--state-dir', USAGE.enroll) ?? defaultStateDir,
        force: values.force === true,
      };
    }
    case 'run': {
      const values = parse(
        rest,
        { 'state-dir': { type: 'string' }, config: { type: 'string' }, help },
        USAGE.run,
      );
      if (values.help) return { kind: 'help', topic: 'run' };
      const configFile = values.config as string | undefined;
      if (configFile === '') throw new UsageError('--config needs a file name', USAGE.run);
      const stateDir = absolute(values['state-dir'] as string | undefined, '--state-dir', USAGE.run);
      return {
        kind: 'run',
        ...(stateDir === undefined ? {} : { stateDir }),
        ...(configFile === undefined ? {} : { configFile }),
      };
    }
    default:
      throw new UsageError(
        first.startsWith('-')
          ? `unknown option ${JSON.stringify(first)}`
          : `unknown command ${JSON.stringify(first)}`,
        USAGE.main,
      );
  }
}
