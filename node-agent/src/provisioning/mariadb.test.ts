import { describe, expect, it } from 'vitest';
import {
  createSql,
  dropSql,
  dropTablesSql,
  ensureSql,
  generateDatabasePassword,
  grantDatabasePattern,
  quoteIdentifier,
  quoteString,
} from './mariadb.ts';

describe('SQL quoting', () => {
  it('quotes identifiers with backticks doubled', () => {
    expect(quoteIdentifier('wp_abc')).toBe('`wp_abc`');
    expect(quoteIdentifier('a`b')).toBe('`a``b`');
    expect(() => quoteIdentifier('')).toThrow();
  });

  it('escapes strings for the default sql_mode', () => {
    expect(quoteString('plain')).toBe("'plain'");
    expect(quoteString("it's")).toBe("'it\\'s'");
    expect(quoteString('a\\b')).toBe("'a\\\\b'");
    expect(quoteString('\\')).toBe("'\\\\'");
    expect(quoteString('line\nbreak\r\0\u001a')).toBe("'line\\nbreak\\r\\0\\Z'");
    expect(quoteString("'; DROP DATABASE mysql; --")).toBe("'\\'; DROP DATABASE mysql; --'");
  });

  it('escapes LIKE wildcards in the database part of a GRANT', () => {
    expect(grantDatabasePattern('wp_abc')).toBe('`wp\\_abc`');
    expect(grantDatabasePattern('a%b')).toBe('`a\\%b`');
  });
});

describe('statements', () => {
  it('creates the database, the user and a grant on that database only', () => {
    expect(createSql({ database: 'wp_abc', user: 'wp_abc' }, 'secret')).toBe(
      [
        'CREATE DATABASE `wp_abc` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;',
        "CREATE USER 'wp_abc'@'localhost' IDENTIFIED BY 'secret';",
        "GRANT ALL PRIVILEGES ON `wp\\_abc`.* TO 'wp_abc'@'localhost';",
        '',
      ].join('\n'),
    );
  });

  it('drops user and database idempotently', () => {
    expect(dropSql({ database: 'wp_abc', user: 'wp_abc', host: '127.0.0.1' })).toBe(
      "DROP DATABASE IF EXISTS `wp_abc`;\nDROP USER IF EXISTS 'wp_abc'@'127.0.0.1';\n",
    );
  });

  it('refuses names outside [A-Za-z0-9_]', () => {
    for (const bad of ['', 'a-b', 'a b', 'a`b', "a'b", 'a'.repeat(33), 'db;']) {
      expect(() => createSql({ database: bad, user: 'u' }, 'p'), bad).toThrow();
      expect(() => createSql({ database: 'd', user: bad }, 'p'), bad).toThrow();
    }
    expect(() => createSql({ database: 'd', user: 'u', host: "x' OR '1" }, 'p')).toThrow();
  });

  it('generates 32-character passwords of URL-safe base64', () => {
    const password = generateDatabasePassword();
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(generateDatabasePassword()).not.toBe(password);
  });
});

describe('ensureSql and dropTablesSql', () => {
  it('completes an account the agent holds the password of, without failing on what exists', () => {
    expect(ensureSql({ database: 'wp_abc', user: 'wp_abc' }, "p'w")).toBe(
      [
        'CREATE DATABASE IF NOT EXISTS `wp_abc` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;',
        "CREATE USER IF NOT EXISTS 'wp_abc'@'localhost' IDENTIFIED BY 'p\\'w';",
        "ALTER USER 'wp_abc'@'localhost' IDENTIFIED BY 'p\\'w';",
        "GRANT ALL PRIVILEGES ON `wp\\_abc`.* TO 'wp_abc'@'localhost';",
        '',
      ].join('\n'),
    );
    expect(() => ensureSql({ database: 'mysql`; x', user: 'wp_abc' }, 'x')).toThrow();
  });

  it('drops views and tables of one database, qualified and quoted', () => {
    expect(
      dropTablesSql('wp_abc', [
        { name: 'wp_options', view: false },
        { name: 'odd`name', view: false },
        { name: 'v_report', view: true },
      ]),
    ).toBe(
      [
        'SET FOREIGN_KEY_CHECKS = 0;',
        'DROP VIEW IF EXISTS `wp_abc`.`v_report`;',
        'DROP TABLE IF EXISTS `wp_abc`.`wp_options`, `wp_abc`.`odd``name`;',
        '',
      ].join('\n'),
    );
    expect(() => dropTablesSql('a b', [])).toThrow();
  });
});
