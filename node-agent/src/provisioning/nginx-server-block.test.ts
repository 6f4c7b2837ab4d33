import { describe, expect, it } from 'vitest';
import { isNginxSafeHostname, renderServerBlock, type ServerBlockOptions } from './nginx-server-block.ts';

const base: ServerBlockOptions = {
  name: 'shop--prod',
  hostnames: ['shop--prod.node1.example.net', 'www.shop.example'],
  listen: [{ port: 80 }, { address: '[::]', port: 80 }],
  root: '/srv/wpcp/shop--prod/current',
  fastcgiSocket: '/run/php/wpcp-shop--prod.sock',
  clientMaxBodySize: '64M',
  fastcgiReadTimeoutSeconds: 70,
};

describe('renderServerBlock', () => {
  it('renders hostnames, root and PHP through the pool socket', () => {
    const text = renderServerBlock(base);
    expect(text).toContain('    listen 80;\n    listen [::]:80;\n');
    expect(text).toContain('    server_name shop--prod.node1.example.net www.shop.example;\n');
    expect(text).toContain('    root /srv/wpcp/shop--prod/current;\n');
    expect(text).toContain('        fastcgi_pass unix:/run/php/wpcp-shop--prod.sock;\n');
    expect(text).toContain('fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;');
    expect(text).toContain('    client_max_body_size 64M;\n');
    expect(text).toContain('        fastcgi_read_timeout 70s;\n');
    expect(text).toContain('try_files $uri $uri/ /index.php?$args;');
    // Balanced braces: nothing opened that is not closed.
    expect(text.split('{').length).toBe(text.split('}').length);
  });

  it('renders a loopback listener and log files', () => {
    const text = renderServerBlock({
      ...base,
      listen: [{ address: '127.0.0.1', port: 8080 }],
      accessLog: '/srv/wpcp/shop--prod/logs/nginx-access.log',
      errorLog: '/srv/wpcp/shop--prod/logs/nginx-error.log',
    });
    expect(text).toContain('    listen 127.0.0.1:8080;\n');
    expect(text).toContain('    access_log /srv/wpcp/shop--prod/logs/nginx-access.log;\n');
  });

  it('passes the public port in HTTP_HOST only when it is not the default', () => {
    expect(renderServerBlock({ ...base, publicPort: 80 })).not.toContain('HTTP_HOST');
    expect(renderServerBlock({ ...base, publicPort: 443, publicScheme: 'https' })).not.toContain('HTTP_HOST');
    expect(renderServerBlock({ ...base, publicPort: 8080 })).toContain(
      '        fastcgi_param HTTP_HOST $host:8080;\n',
    );
    expect(() => renderServerBlock({ ...base, publicPort: 0 })).toThrow();
  });

  it('refuses hostnames nginx would read as syntax, regexes or wildcards', () => {
    const bad = [
      'a.com; include /etc/passwd',
      'a.com;',
      '~^.*$',
      '~example.com',
      '*.x.com',
      '.x.com',
      'x.com.',
      'a.com}',
      'a.com{',
      'a com',
      'a.com\nserver_name evil',
      'a.com#',
      '"a.com"',
      "'a.com'",
      '$host',
      'a\\.com',
      'A.COM',
      'ex_ample.com',
      '-a.com',
      'a-.com',
      'a..com',
      'xn--bcher-kva.example',
      `${'a'.repeat(64)}.com`,
      `${'a.'.repeat(150)}com`,
      '',
    ];
    for (const hostname of bad) {
      const valid = hostname === 'xn--bcher-kva.example';
      expect(isNginxSafeHostname(hostname), hostname).toBe(valid);
      if (!valid) expect(() => renderServerBlock({ ...base, hostnames: [hostname] }), hostname).toThrow();
    }
  });

  it('refuses unsafe paths, listeners and sizes', () => {
    const cases: Partial<ServerBlockOptions>[] = [
      { hostnames: [] },
      { hostnames: ['a.com', 'a.com'] },
      { listen: [] },
      { listen: [{ port: 0 }] },
      { listen: [{ port: 70_000 }] },
      { listen: [{ address: '0.0.0.0; include x', port: 80 }] },
      { listen: [{ address: '256.0.0.1', port: 80 }] },
      { listen: [{ address: '::', port: 80 }] },
      { root: '/srv/wpcp/shop--prod/current;' },
      { root: '/srv/wpcp/{x}' },
      { root: 'relative' },
      { fastcgiSocket: '/run/php/x.sock; fastcgi_pass 1.2.3.4' },
      { clientMaxBodySize: '64M; deny all' },
      { fastcgiReadTimeoutSeconds: 0 },
      { accessLog: '/var/log/nginx/$host.log' },
      { name: 'shop prod' },
    ];
    for (const change of cases) {
      expect(() => renderServerBlock({ ...base, ...change }), JSON.stringify(change)).toThrow();
    }
  });
});
