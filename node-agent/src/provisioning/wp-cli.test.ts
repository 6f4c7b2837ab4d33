import { describe, expect, it } from 'vitest';
import type { RunResult } from '../exec/run.ts';
import { ProvisioningError } from './errors.ts';
import { environmentLayout } from './layout.ts';
import { parseReplacementCount, parseWpCliJson, wpCliError, wpCliInvocation } from './wp-cli.ts';

const layout = environmentLayout('/srv/wpcp', 'shop--prod');

function result(overrides: Partial<RunResult>): RunResult {
  return {
    exitCode: 1,
    signal: null,
    stdout: '',
    stderr: '',
    truncated: false,
    timedOut: false,
    cancelled: false,
    durationMs: 5,
    ...overrides,
  };
}

describe('wpCliInvocation', () => {
  it('runs WP-CLI through PHP with --path first and a small environment', () => {
    expect(
      wpCliInvocation({ wpCli: '/usr/local/bin/wp', phpCli: '/usr/bin/php' }, layout, [
        'option',
        'get',
        'home',
      ]),
    ).toEqual({
      file: '/usr/bin/php',
      args: ['/usr/local/bin/wp', '--path=/srv/wpcp/shop--prod/current', 'option', 'get', 'home'],
      env: {
        HOME: '/srv/wpcp/shop--prod',
        WP_CLI_CACHE_DIR: '/srv/wpcp/shop--prod/tmp/wp-cli-cache',
        WP_CLI_DISABLE_AUTO_CHECK_UPDATE: '1',
      },
    });
  });

  it('runs WP-CLI directly without a PHP CLI, at another path when asked', () => {
    const invocation = wpCliInvocation(
      { wpCli: '/usr/local/bin/wp', phpCli: '' },
      layout,
      ['core', 'download'],
      {
        path: '/srv/wpcp/shop--prod/releases/.staging',
      },
    );
    expect(invocation.file).toBe('/usr/local/bin/wp');
    expect(invocation.args).toEqual(['--path=/srv/wpcp/shop--prod/releases/.staging', 'core', 'download']);
  });

  it('keeps each value one argument, and never passes --allow-root or a second --path', () => {
    const args = wpCliInvocation({ wpCli: '/usr/local/bin/wp', phpCli: '' }, layout, [
      'option',
      'update',
      'blogname',
      "x'; $(id) --allow-root",
    ]).args;
    expect(args.at(-1)).toBe("x'; $(id) --allow-root");
    for (const bad of [
      '--allow-root',
      '--path=/',
      '--exec=phpinfo();',
      '--require=/tmp/x.php',
      '--ssh=host',
    ]) {
      expect(() =>
        wpCliInvocation({ wpCli: '/usr/local/bin/wp', phpCli: '' }, layout, ['eval', bad]),
      ).toThrow(ProvisioningError);
    }
  });
});

describe('WP-CLI output', () => {
  it('maps a failure to wp_cli_error with its Error: line', () => {
    const err = wpCliError(
      result({
        stdout: 'PHP Notice: something\n',
        stderr: "Warning: x\nError: The 'a@b' email address is invalid.\n",
      }),
      'wp core install',
    );
    expect(err.code).toBe('wp_cli_error');
    expect(err.message).toBe("wp core install exited with code 1: The 'a@b' email address is invalid.");
  });

  it('uses the last output lines when there is no Error: line, and says when it timed out', () => {
    expect(wpCliError(result({ stderr: 'PHP Fatal error: boom\n' }), 'wp eval').message).toBe(
      'wp eval exited with code 1: PHP Fatal error: boom',
    );
    expect(wpCliError(result({ exitCode: null, timedOut: true, durationMs: 300 }), 'wp x').message).toBe(
      'wp x timed out after 300 ms',
    );
  });

  it('parses JSON tolerantly', () => {
    expect(parseWpCliJson('')).toEqual([]);
    expect(parseWpCliJson('[{"ID":1}]')).toEqual([{ ID: 1 }]);
    expect(parseWpCliJson('PHP Deprecated: foo in bar.php\n{"a":1}\n')).toEqual({ a: 1 });
    expect(() => parseWpCliJson('Deprecated: nothing else')).toThrow(ProvisioningError);
  });

  it('reads the replacement count of search-replace', () => {
    expect(
      parseReplacementCount('Table\tColumn\nwp_options\toption_value\t2\nSuccess: Made 12 replacements.\n'),
    ).toBe(12);
    expect(parseReplacementCount('Success: Made 1 replacement.')).toBe(1);
    expect(parseReplacementCount('Success: 3 replacements to be made.')).toBeUndefined();
  });
});
