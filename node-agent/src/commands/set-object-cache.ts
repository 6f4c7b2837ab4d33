// `set_object_cache`: the Redis object-cache drop-in (`wp-content/object-cache.php`) installed or
// removed through WP-CLI (`wp redis enable` / `wp redis disable`) as the environment's user.
// Idempotent both ways: enabling an enabled cache or disabling a disabled one changes nothing. The
// literal per-environment WP_REDIS_PREFIX and WP_REDIS_SELECTIVE_FLUSH are in wp-config.php from
// WRITE_WP_CONFIG on, so the drop-in only ever reads and flushes this environment's keys.
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { SetObjectCache } from '@wpcp/shared/agent-protocol';
import { type ValidEnvironment, validateEnvironmentSpec } from '../provisioning/environment-spec.ts';
import { wpCliError } from '../provisioning/wp-cli.ts';
import { layoutOf, requireCurrent, requireUser, runWp } from './environment-support.ts';
import { handle } from './handler-kit.ts';
import type { NodeStack } from './node-stack.ts';
import type { CommandHandler } from './types.ts';

export function validateSetObjectCache(payload: SetObjectCache): {
  environment: ValidEnvironment;
  enabled: boolean;
} {
  return { environment: validateEnvironmentSpec(payload.environment), enabled: payload.enabled };
}

export function setObjectCacheHandler(stack: NodeStack): CommandHandler<SetObjectCache> {
  return (payload, context) =>
    handle(
      context,
      () => validateSetObjectCache(payload),
      async ({ environment, enabled }, kit) => {
        const layout = layoutOf(stack, environment);
        const user = await requireUser(stack, environment);
        await requireCurrent(layout);
        const dropin = path.join(layout.current, 'wp-content', 'object-cache.php');
        const step = enabled ? 'enable-object-cache' : 'disable-object-cache';
        kit.progress(step, 0, `${step} for ${environment.name}`);
        const present = (await lstat(dropin).catch(() => undefined)) !== undefined;
        let changed = false;
        if (enabled) {
          const result = await runWp(stack, layout, user, kit, ['redis', 'enable']);
          changed = !/already enabled/i.test(result.stdout);
        } else if (present) {
          const result = await runWp(stack, layout, user, kit, ['redis', 'disable'], { allowFailure: true });
          if (
            result.exitCode !== 0 &&
            !/no object cache drop-in found/i.test(result.stderr + result.stdout)
          ) {
            throw wpCliError(result, 'wp redis disable');
          }
          changed = result.exitCode === 0;
        }
        kit.progress(step, 100, 'done');
        return { enabled, changed, dropin };
      },
    );
}
