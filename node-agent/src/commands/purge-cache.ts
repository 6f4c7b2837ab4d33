// `purge_cache`: empties the environment's FastCGI page cache (the files under
// `<nginxCacheDir>/<site>--<env>`, deleted as root; the zone directory itself stays, nginx keeps
// using it and answers the next request for a purged page with a MISS) and deletes its Redis
// object-cache keys (SCAN over the escaped literal prefix + UNLINK in batches; never FLUSHDB or
// FLUSHALL). Output: `page_cache_files_removed`, `redis_keys_removed`. A cache that was never
// enabled is simply empty: purging it succeeds with zero counts.
import { lstat, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { PurgeCache } from '@wpcp/shared/agent-protocol';
import { type ValidEnvironment, validateEnvironmentSpec } from '../provisioning/environment-spec.ts';
import { deleteKeysWithPrefix } from '../provisioning/redis.ts';
import { fastcgiCacheDir } from './configure-nginx.ts';
import { handle } from './handler-kit.ts';
import type { NodeStack } from './node-stack.ts';
import type { CommandHandler } from './types.ts';

export function validatePurgeCache(payload: PurgeCache): { environment: ValidEnvironment } {
  return { environment: validateEnvironmentSpec(payload.environment) };
}

/** Deletes everything under `dir` (never following links out of it); returns how many files went. */
export async function emptyDirectory(dir: string): Promise<number> {
  const info = await lstat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return 0;
  let files = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const child = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      files += await emptyDirectory(child);
    } else {
      files += 1;
    }
    await rm(child, { recursive: true, force: true });
  }
  return files;
}

export function purgeCacheHandler(stack: NodeStack): CommandHandler<PurgeCache> {
  return (payload, context) =>
    handle(
      context,
      () => validatePurgeCache(payload),
      async ({ environment }, kit) => {
        const dir = fastcgiCacheDir(stack, environment);
        kit.progress('purge-page-cache', 0, `emptying ${dir}`);
        const files = await emptyDirectory(dir);
        kit.log(`removed ${files} page cache file(s) from ${dir}`);
        kit.checkCancelled();
        kit.progress('purge-object-cache', 50, `deleting Redis keys under ${environment.redisPrefix}`);
        const keys = await deleteKeysWithPrefix(stack.redis, environment.redisPrefix, {
          signal: context.signal,
        });
        kit.log(`removed ${keys} Redis key(s) under ${environment.redisPrefix}`);
        kit.progress('purge-object-cache', 100, 'done');
        return { page_cache_files_removed: files, redis_keys_removed: keys };
      },
    );
}
