// `create_magic_login`: a one-time login URL for the environment's WordPress admin
// (docs/security-and-secrets.md, "Magic login"). 256 random bits; only sha256(token), the expiry,
// the bound host and the user id are written, to `<root>/shared/magic-login/<hash>.json`
// (user:user 0600 in a 0700 directory, outside the release root nginx serves). The URL carries the
// token in its fragment (`<site_url>/wpcp-login/#<token>`), so it never reaches an access log; the
// must-use plugin (ensured here, idempotent) consumes it atomically. The URL is a secret: it is
// registered with the handler kit and never logged.
//
// The user is the administrator with the lowest ID (`wp user list --role=administrator`): the
// account INSTALL_WORDPRESS made, as long as it exists.
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { CreateMagicLogin } from '@wpcp/shared/agent-protocol';
import { writeFileAtomically } from '../provisioning/atomic-config.ts';
import {
  parseSiteUrl,
  type ValidEnvironment,
  validateEnvironmentSpec,
} from '../provisioning/environment-spec.ts';
import { invalidArgument, ProvisioningError } from '../provisioning/errors.ts';
import {
  ensureMagicLoginPlugin,
  MAGIC_LOGIN_PATH,
  magicLoginDir,
  removeExpiredTokens,
} from '../provisioning/magic-login-plugin.ts';
import { parseWpCliJson } from '../provisioning/wp-cli.ts';
import { layoutOf, requireCurrent, requireUser, runWp } from './environment-support.ts';
import { handle } from './handler-kit.ts';
import type { NodeStack } from './node-stack.ts';
import type { CommandHandler } from './types.ts';

/** The longest validity the agent accepts (the control plane asks for 60 s). */
export const MAX_MAGIC_LOGIN_TTL_SECONDS = 3_600;

export interface MagicLoginInput {
  environment: ValidEnvironment;
  siteUrl: string;
  /** `hostname[:port]` as a browser sends it in Host (no port when it is the scheme's default). */
  host: string;
  ttlSeconds: number;
}

export function validateCreateMagicLogin(payload: CreateMagicLogin): MagicLoginInput {
  const environment = validateEnvironmentSpec(payload.environment);
  const site = parseSiteUrl(payload.siteUrl, 'site_url');
  const ttl = payload.ttlSeconds;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_MAGIC_LOGIN_TTL_SECONDS) {
    throw invalidArgument(`ttl_seconds must be 1-${MAX_MAGIC_LOGIN_TTL_SECONDS}: ${ttl}`);
  }
  const defaultPort = site.scheme === 'https' ? 443 : 80;
  const host =
    site.port === undefined || site.port === defaultPort ? site.hostname : `${site.hostname}:${site.port}`;
  return { environment, siteUrl: `${site.scheme}://${host}`, host, ttlSeconds: ttl };
}

interface Administrator {
  ID: number;
  user_login: string;
}

export function createMagicLoginHandler(
  stack: NodeStack,
  now: () => number = Date.now,
): CommandHandler<CreateMagicLogin> {
  return (payload, context) =>
    handle(
      context,
      () => validateCreateMagicLogin(payload),
      async ({ environment, siteUrl, host, ttlSeconds }, kit) => {
        const layout = layoutOf(stack, environment);
        const user = await requireUser(stack, environment);
        await requireCurrent(layout);
        const owner = { uid: user.uid, gid: user.gid };
        await ensureMagicLoginPlugin(layout, owner);
        await removeExpiredTokens(layout, now());

        const listed = await runWp(
          stack,
          layout,
          user,
          kit,
          ['user', 'list', '--role=administrator', '--fields=ID,user_login', '--format=json'],
          { logOutput: false, timeoutMs: 8_000 },
        );
        const admins = (parseWpCliJson(listed.stdout) as Administrator[])
          .map((a) => ({ ID: Number(a.ID), user_login: String(a.user_login) }))
          .filter((a) => Number.isInteger(a.ID) && a.ID > 0)
          .sort((a, b) => a.ID - b.ID);
        const admin = admins[0];
        if (!admin) {
          throw new ProvisioningError('wp_cli_error', `${environment.name} has no WordPress administrator`);
        }

        const token = randomBytes(32).toString('base64url');
        const loginUrl = `${siteUrl}${MAGIC_LOGIN_PATH}#${token}`;
        // Masked in every later log line of the command (kit.secret would also scrub it from the
        // output, which is where it must go).
        kit.context.redact(token);
        kit.context.redact(loginUrl);
        const hash = createHash('sha256').update(token).digest('hex');
        const expiresAtMs = now() + ttlSeconds * 1000;
        await writeFileAtomically(
          path.join(magicLoginDir(layout), `${hash}.json`),
          `${JSON.stringify({ expires_at_ms: expiresAtMs, host, user_id: admin.ID })}\n`,
          0o600,
          owner,
        );
        kit.log(`magic login issued for ${environment.name} as ${admin.user_login}, valid ${ttlSeconds} s`);
        // The output is the one place the URL goes: to the control plane, over mTLS. (The agent's
        // journal keeps it, root-only, until the control plane acknowledges the result.)
        return { login_url: loginUrl, expires_at_ms: expiresAtMs, user: admin.user_login };
      },
    );
}
