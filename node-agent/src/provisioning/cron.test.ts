import { describe, expect, it } from 'vitest';
import { cronFileName, renderCronFile } from './cron.ts';
import { ProvisioningError } from './errors.ts';
import { environmentLayout } from './layout.ts';

const layout = environmentLayout('/srv/wpcp', 'shop--prod');

describe('renderCronFile', () => {
  it('runs due WP-Cron events every minute as the environment user, one run at a time', () => {
    const text = renderCronFile({
      environment: 'shop--prod',
      user: 'wp_abc123def456',
      layout,
      wp: { wpCli: '/usr/local/bin/wp', phpCli: '/usr/bin/php' },
    });
    const lines = text.split('\n');
    expect(lines).toContain('MAILTO=""');
    expect(lines).toContain(
      '* * * * * wp_abc123def456 /usr/bin/flock -n /srv/wpcp/shop--prod/tmp/wp-cron.lock /usr/bin/php /usr/local/bin/wp --path=/srv/wpcp/shop--prod/current cron event run --due-now --quiet',
    );
    expect(text.endsWith('\n')).toBe(true);
    // Nothing a shell would interpret, and no % (cron's newline).
    const command = lines.find((line) => line.startsWith('* * * * *')) as string;
    expect(command).not.toMatch(/[;&|$`'"%<>(){}\\]/);
  });

  it('runs WP-CLI directly without a PHP CLI', () => {
    const text = renderCronFile({
      environment: 'shop--prod',
      user: 'wp_abc123def456',
      layout,
      wp: { wpCli: '/usr/local/bin/wp', phpCli: '' },
    });
    expect(text).toContain('wp-cron.lock /usr/local/bin/wp --path=');
  });

  it('refuses values that are not plain paths or names', () => {
    const base = { environment: 'shop--prod', user: 'wp_abc123def456', layout };
    expect(() => renderCronFile({ ...base, wp: { wpCli: '/usr/local/bin/wp x', phpCli: '' } })).toThrow(
      ProvisioningError,
    );
    expect(() => renderCronFile({ ...base, wp: { wpCli: '/usr/local/bin/wp%', phpCli: '' } })).toThrow(
      ProvisioningError,
    );
    expect(() => renderCronFile({ ...base, user: 'root;id', wp: { wpCli: '/w', phpCli: '' } })).toThrow(
      ProvisioningError,
    );
  });

  it('names the file without a dot (cron ignores those)', () => {
    expect(cronFileName('shop--prod')).toBe('wpcp-shop--prod');
  });
});
