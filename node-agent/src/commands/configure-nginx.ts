// `configure_nginx`: writes (or removes) an environment's server block,
// `<nginxSitesDir>/wpcp-<site>--<env>.conf`, for its hostnames (the primary first). The change is
// atomic: the file is replaced by a rename, `nginx -t` checks the whole configuration, nginx is
// reloaded, and the previous file is put back when the check or the reload fails (nginx then keeps
// serving every site as before; the command fails with `config_check_failed` or
// `config_reload_failed` and nginx's own words).
//
// With `fastcgi_cache` the file also declares the environment's own FastCGI cache zone
// (`fastcgi_cache_path` at http level, directory `<nginxCacheDir>/<site>--<env>`, made here before
// the check) and the server block gets the WordPress skip rules and an `X-Cache` header; without it,
// none of that is rendered and the cache directory is deleted (also when the block is removed).

import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ConfigureNginx } from '@wpcp/shared/agent-protocol';
import { applyConfigAtomically, commandCheck, commandReload } from '../provisioning/atomic-config.ts';
import {
  type ValidEnvironment,
  validateEnvironmentSpec,
  validateHostnames,
} from '../provisioning/environment-spec.ts';
import { invalidArgument } from '../provisioning/errors.ts';
import { fastcgiCacheZone, renderServerBlock } from '../provisioning/nginx-server-block.ts';
import { DEFAULT_PHP_LIMITS } from '../provisioning/php-fpm-pool.ts';
import { isDirectory, layoutOf, missing, poolSocketPath, serverBlockPath } from './environment-support.ts';
import { handle } from './handler-kit.ts';
import type { NodeStack } from './node-stack.ts';
import type { CommandHandler } from './types.ts';

interface NginxInput {
  environment: ValidEnvironment;
  hostnames: string[];
  remove: boolean;
  fastcgiCache: boolean;
}

export function validateConfigureNginx(payload: ConfigureNginx): NginxInput {
  const environment = validateEnvironmentSpec(payload.environment);
  if (payload.remove) {
    if (payload.hostnames.length > 0) throw invalidArgument('remove takes no hostnames');
    return { environment, hostnames: [], remove: true, fastcgiCache: false };
  }
  return {
    environment,
    hostnames: validateHostnames(payload.hostnames),
    remove: false,
    fastcgiCache: payload.fastcgiCache,
  };
}

/** The directory of an environment's FastCGI page cache. */
export function fastcgiCacheDir(stack: NodeStack, environment: ValidEnvironment): string {
  return path.join(stack.nginx.cacheDir, environment.name);
}

/** The server block of an environment on this node (the renderer checks every value again). */
export function serverBlockFor(
  stack: NodeStack,
  environment: ValidEnvironment,
  hostnames: readonly string[],
  fastcgiCache = false,
): string {
  const layout = layoutOf(stack, environment);
  return renderServerBlock({
    ...(fastcgiCache
      ? {
          fastcgiCache: {
            zone: fastcgiCacheZone(environment.name),
            path: fastcgiCacheDir(stack, environment),
          },
        }
      : {}),
    name: environment.name,
    hostnames,
    listen: stack.nginx.listen,
    root: layout.current,
    fastcgiSocket: poolSocketPath(stack, environment),
    clientMaxBodySize: DEFAULT_PHP_LIMITS.postMaxSize,
    fastcgiReadTimeoutSeconds: DEFAULT_PHP_LIMITS.maxExecutionTimeSeconds + 10,
    accessLog: path.join(layout.logs, 'nginx-access.log'),
    errorLog: path.join(layout.logs, 'nginx-error.log'),
    publicPort: stack.nginx.publicPort,
    publicScheme: stack.nginx.publicScheme,
  });
}

export function configureNginxHandler(stack: NodeStack): CommandHandler<ConfigureNginx> {
  return (payload, context) =>
    handle(
      context,
      () => validateConfigureNginx(payload),
      async ({ environment, hostnames, remove, fastcgiCache }, kit) => {
        const file = serverBlockPath(stack, environment);
        const step = remove ? 'remove-nginx' : 'write-nginx';
        kit.progress(step, 0, `${step} for ${environment.name}`);
        let content: string | null = null;
        if (!remove) {
          const layout = layoutOf(stack, environment);
          // nginx -t opens the access and error logs: say which step is missing instead.
          if (!(await isDirectory(layout.logs)))
            throw missing('CREATE_LAYOUT', `${layout.logs} does not exist`);
          content = serverBlockFor(stack, environment, hostnames, fastcgiCache);
          // nginx makes only the last level of a cache path (and hands it to its worker user).
          if (fastcgiCache) {
            await mkdir(stack.nginx.cacheDir, { recursive: true, mode: 0o755 });
            await mkdir(fastcgiCacheDir(stack, environment), { recursive: true, mode: 0o700 });
          }
        }
        const { changed } = await applyConfigAtomically({
          path: file,
          content,
          check: commandCheck(stack.nginx.check),
          reload: commandReload(stack.nginx.reload),
          lock: stack.locks.nginx,
        });
        // Without the zone, its files would come back as stale pages when the cache is turned on
        // again (nginx loads a zone's directory at start): they go with it.
        if (!fastcgiCache) await rm(fastcgiCacheDir(stack, environment), { recursive: true, force: true });
        kit.log(
          changed
            ? `${remove ? 'removed' : 'wrote'} ${file}; nginx checked and reloaded`
            : `${file} was already ${remove ? 'absent' : 'up to date'}`,
        );
        kit.progress(step, 100, 'done');
        return remove
          ? { file, changed, removed: true }
          : { file, changed, hostnames, fastcgi_cache: fastcgiCache };
      },
    );
}
