import { describe, expect, it } from 'vitest';
import { parseCli, USAGE, UsageError } from './cli.ts';

function usageError(argv: string[]): UsageError {
  try {
    parseCli(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('parseCli', () => {
  it('parses enroll, with the state directory made absolute and a default', () => {
    expect(
      parseCli(['enroll', '--server', 'cp:8443', '--token', 't', '--state-dir', 'rel', '--force']),
    ).toEqual({
      kind: 'enroll',
      server: 'cp:8443',
      token: { value: 't' },
      stateDir: `${process.cwd()}/rel`,
      force: true,
    });
    expect(parseCli(['enroll', '--server=cp:8443', '--token-file', '-'])).toMatchObject({
      token: { file: '-' },
      stateDir: '/var/lib/wpcp-agent',
      force: false,
    });
  });

  it('parses run, help and version', () => {
    expect(parseCli(['run'])).toEqual({ kind: 'run' });
    expect(parseCli(['run', '--state-dir', '/s', '--config', '/c.json'])).toEqual({
      kind: 'run',
      stateDir: '/s',
      configFile: '/c.json',
    });
    expect(parseCli(['--help'])).toEqual({ kind: 'help', topic: 'main' });
    expect(parseCli(['run', '-h'])).toEqual({ kind: 'help', topic: 'run' });
    expect(parseCli(['enroll', '--help'])).toEqual({ kind: 'help', topic: 'enroll' });
    expect(parseCli(['-V'])).toEqual({ kind: 'version' });
  });

  it('names each usage error and gives the usage of the command', () => {
    expect(usageError([]).message).toBe('missing command');
    expect(usageError(['deploy']).message).toBe('unknown command "deploy"');
    expect(usageError(['--verbose']).usage).toBe(USAGE.main);
    expect(usageError(['run', '--bogus'])).toMatchObject({
      message: "Unknown option '--bogus'",
      usage: USAGE.run,
    });
    expect(usageError(['run', 'extra']).message).toBe('unexpected argument "extra"');
    expect(usageError(['run', '--config']).message).toMatch(/argument missing/);
    expect(usageError(['enroll', '--token', 't']).message).toBe('--server is required');
    expect(usageError(['enroll', '--server', 'a:1']).message).toBe('--token or --token-file is required');
    expect(usageError(['enroll', '--server', 'a:1', '--token', 't', '--token-file', 'f']).message).toBe(
      'give either --token or --token-file, not both',
    );
    expect(usageError(['enroll', '--token', 't']).usage).toBe(USAGE.enroll);
  });
});
