// The agent's own check of everything a command says about an environment, before any of it reaches
// a path, a configuration file, SQL or a process. The control plane validated the same values; this
// is the second line of defence, and it is deliberately narrower than the protocol's comments: the
// agent only acts on names of the form the control plane derives (names.ts), so no command can
// name `root`, `www-data`, the `mysql` database or another tool's Redis keys.
import type { EnvironmentSpec } from '@wpcp/shared/agent-protocol';
import { invalidArgument } from './errors.ts';
import { assertEnvironmentName, SYSTEM_NAME_PREFIX } from './names.ts';
import { isNginxSafeHostname } from './nginx-server-block.ts';

/** `wp_` + a short id (names.ts): Linux user, database and database user. */
const SYSTEM_NAME = new RegExp(`^${SYSTEM_NAME_PREFIX}[a-z][a-z0-9]{5,28}$`);
/** `wpcp:` + a short id + `:`. */
const REDIS_PREFIX = /^wpcp:[a-z][a-z0-9]{5,28}:$/;

export interface ValidEnvironment {
  /** `<site>--<env>`. */
  name: string;
  systemUser: string;
  databaseName: string;
  databaseUser: string;
  redisPrefix: string;
}

export function validateEnvironmentSpec(
  spec: EnvironmentSpec | undefined,
  what = 'environment',
): ValidEnvironment {
  if (!spec) throw invalidArgument(`${what} is missing`);
  try {
    assertEnvironmentName(spec.name);
  } catch {
    throw invalidArgument(
      `${what}.name must be <site slug>--<environment slug> (lowercase letters and digits in hyphen-separated groups): ${JSON.stringify(spec.name)}`,
    );
  }
  for (const [field, value] of [
    ['system_user', spec.systemUser],
    ['database_name', spec.databaseName],
    ['database_user', spec.databaseUser],
  ] as const) {
    if (!SYSTEM_NAME.test(value)) {
      throw invalidArgument(
        `${what}.${field} must be ${SYSTEM_NAME_PREFIX}<short id> (a lowercase letter, then 5-28 lowercase letters or digits): ${JSON.stringify(value)}`,
      );
    }
  }
  if (!REDIS_PREFIX.test(spec.redisPrefix)) {
    throw invalidArgument(
      `${what}.redis_prefix must be wpcp:<short id>: ${JSON.stringify(spec.redisPrefix)}`,
    );
  }
  return {
    name: spec.name,
    systemUser: spec.systemUser,
    databaseName: spec.databaseName,
    databaseUser: spec.databaseUser,
    redisPrefix: spec.redisPrefix,
  };
}

export interface SiteUrl {
  url: string;
  scheme: 'http' | 'https';
  hostname: string;
  port?: number;
}

const SITE_URL = /^(https?):\/\/([^/:?#]+)(?::([0-9]{1,5}))?$/;

/** `http(s)://<hostname>[:port]`, lowercase, without path, query, user info or trailing slash. */
export function parseSiteUrl(value: string, what = 'url'): SiteUrl {
  const match = SITE_URL.exec(value);
  const hostname = match?.[2] ?? '';
  const port = match?.[3] === undefined ? undefined : Number(match[3]);
  if (!match || !isNginxSafeHostname(hostname) || (port !== undefined && (port < 1 || port > 65_535))) {
    throw invalidArgument(
      `${what} must be http:// or https:// followed by a lowercase hostname and an optional port, without a path: ${JSON.stringify(value)}`,
    );
  }
  return {
    url: value,
    scheme: match[1] as 'http' | 'https',
    hostname,
    ...(port === undefined ? {} : { port }),
  };
}

/** Control characters (and the Unicode line and paragraph separators) are never accepted. */
const CONTROL = /[\p{Cc}\p{Cf}\u2028\u2029]/u;

export function validateSiteTitle(value: string): string {
  if (value.trim().length === 0 || value.length > 200 || CONTROL.test(value)) {
    throw invalidArgument('site_title must be 1-200 characters without control characters');
  }
  return value;
}

/** What WordPress's sanitize_user() keeps in strict mode, 1-60 characters. */
const ADMIN_USER = /^[A-Za-z0-9_.@-]{1,60}$/;

export function validateAdminUser(value: string): string {
  if (!ADMIN_USER.test(value)) {
    throw invalidArgument(
      `admin_user must be 1-60 letters, digits, '_', '.', '@' or '-': ${JSON.stringify(value)}`,
    );
  }
  return value;
}

const EMAIL = /^[A-Za-z0-9._%+-]{1,64}@([a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})+)$/i;

/** An address WordPress's is_email() accepts: a dot in the domain, no spaces or quotes. */
export function validateAdminEmail(value: string): string {
  const domain = EMAIL.exec(value)?.[1];
  if (!domain || value.length > 100 || !isNginxSafeHostname(domain.toLowerCase())) {
    throw invalidArgument(
      `admin_email must be an email address with a dotted domain: ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Hostnames of a server block: at least one, each a literal nginx server_name, no duplicates. */
export function validateHostnames(hostnames: readonly string[]): string[] {
  if (hostnames.length === 0) throw invalidArgument('hostnames must name at least one hostname');
  if (hostnames.length > 100) throw invalidArgument('at most 100 hostnames per environment');
  for (const hostname of hostnames) {
    if (!isNginxSafeHostname(hostname)) {
      throw invalidArgument(
        `not a valid hostname (lowercase punycode labels separated by dots, at most 253 characters): ${JSON.stringify(hostname.slice(0, 300))}`,
      );
    }
  }
  if (new Set(hostnames).size !== hostnames.length) throw invalidArgument('hostnames must be unique');
  return [...hostnames];
}
