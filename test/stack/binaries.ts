// The installed binaries the stack harness runs (Debian 12 paths, from deploy/node/bootstrap.sh
// --packages-only). Each can be overridden with an environment variable for other layouts.
import { accessSync, constants } from 'node:fs';

export const BINARIES = {
  mariadbd: process.env.WPCP_STACK_MARIADBD ?? '/usr/sbin/mariadbd',
  mariadbInstallDb: process.env.WPCP_STACK_MARIADB_INSTALL_DB ?? '/usr/bin/mariadb-install-db',
  mysql: process.env.WPCP_STACK_MYSQL ?? '/usr/bin/mysql',
  mariadbDump: process.env.WPCP_STACK_MARIADB_DUMP ?? '/usr/bin/mariadb-dump',
  redisServer: process.env.WPCP_STACK_REDIS_SERVER ?? '/usr/bin/redis-server',
  phpFpm: process.env.WPCP_STACK_PHP_FPM ?? '/usr/sbin/php-fpm8.2',
  php: process.env.WPCP_STACK_PHP ?? '/usr/bin/php8.2',
  nginx: process.env.WPCP_STACK_NGINX ?? '/usr/sbin/nginx',
} as const;

export type BinaryName = keyof typeof BINARIES;

/** The harness binaries that are not installed (empty when the stack can run). */
export function missingBinaries(
  names: readonly BinaryName[] = Object.keys(BINARIES) as BinaryName[],
): string[] {
  return names
    .map((name) => BINARIES[name])
    .filter((file) => {
      try {
        accessSync(file, constants.X_OK);
        return false;
      } catch {
        return true;
      }
    });
}

/**
 * Whether stack suites must skip: only outside CI (binaries missing, or not root), and loudly. In CI
 * (CI=true) nothing is skipped: the suites run and fail on whatever is missing.
 */
export function shouldSkipStack(names?: readonly BinaryName[]): boolean {
  const missing = missingBinaries(names);
  const asRoot = process.getuid?.() === 0;
  if ((missing.length === 0 && asRoot) || process.env.CI) return false;
  const banner = '!'.repeat(100);
  const why =
    missing.length > 0
      ? `not installed: ${missing.join(', ')}\nRun \`sudo bash deploy/node/bootstrap.sh --packages-only\` to install nginx, PHP-FPM, MariaDB and Redis.`
      : 'not running as root: the stack tests create Linux users and run PHP-FPM pools and WP-CLI as them.';
  console.warn(`\n${banner}\nSKIPPING STACK TESTS: ${why}\n${banner}\n`);
  return true;
}
