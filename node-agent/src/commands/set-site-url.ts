// `set_site_url`: WordPress's `home` and `siteurl` options become `url` (after the primary hostname
// changed), through WP-CLI as the environment's user. Idempotent: the same URL again changes nothing.
import type { SetSiteUrl } from '@wpcp/shared/agent-protocol';
import {
  parseSiteUrl,
  type ValidEnvironment,
  validateEnvironmentSpec,
} from '../provisioning/environment-spec.ts';
import { layoutOf, requireCurrent, requireUser, runWp } from './environment-support.ts';
import { handle } from './handler-kit.ts';
import type { NodeStack } from './node-stack.ts';
import type { CommandHandler } from './types.ts';

export function validateSetSiteUrl(payload: SetSiteUrl): { environment: ValidEnvironment; url: string } {
  return { environment: validateEnvironmentSpec(payload.environment), url: parseSiteUrl(payload.url).url };
}

export function setSiteUrlHandler(stack: NodeStack): CommandHandler<SetSiteUrl> {
  return (payload, context) =>
    handle(
      context,
      () => validateSetSiteUrl(payload),
      async ({ environment, url }, kit) => {
        const layout = layoutOf(stack, environment);
        const user = await requireUser(stack, environment);
        await requireCurrent(layout);
        kit.progress('set-site-url', 0, `${environment.name} → ${url}`);
        for (const option of ['home', 'siteurl']) {
          await runWp(stack, layout, user, kit, ['option', 'update', option, url]);
        }
        kit.progress('set-site-url', 100, 'done');
        return { url };
      },
    );
}
