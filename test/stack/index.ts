// The hermetic node stack for tests: private MariaDB, Redis, PHP-FPM and nginx instances started
// from the installed binaries, with configuration, sockets and data in temporary directories on
// free loopback ports; WordPress core files from Debian's packages; the WP-CLI test double.
export { BINARIES, missingBinaries, shouldSkipStack } from './binaries.ts';
export { isAlive, processesInGroup } from './daemon.ts';
export { runCollect } from './exec.ts';
export { httpGet } from './http.ts';
export { type MariaDbInstance, startMariaDb } from './mariadb.ts';
export { type NginxInstance, startNginx } from './nginx.ts';
export { accepts, type PhpFpmInstance, type PhpFpmPoolFile, simplePool, startPhpFpm } from './php-fpm.ts';
export { freePort } from './ports.ts';
export { type RedisInstance, redisCommand, startRedis } from './redis.ts';
export { fetchWordPressCore, type WordPressCore } from './wordpress-core.ts';
export { WP_CLI_DOUBLE } from './wp-cli.ts';
