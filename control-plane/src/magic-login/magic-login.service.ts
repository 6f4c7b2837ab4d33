// One-time WordPress admin logins (docs/security-and-secrets.md, "Magic login"). The node makes the
// token (create_magic_login, synchronously through the agent's stream, 10 s limit) and keeps only
// its hash; the control plane hands the URL to the caller and keeps nothing of it: the audit row
// (who, when, which environment and node, expiry) never holds the URL, the command's stored
// output is cleared as soon as it is read, and `login_url` is redacted from every log line.
import { AppError, isErrorCode } from '@wpcp/shared/errors';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { CommandService } from '../agent-gateway/commands.ts';
import type { Db } from '../database/database.ts';
import { environmentSpec, environmentViews } from '../environments/environment-view.ts';
import { findEnvironment } from '../environments/environments.queries.ts';
import { decodeCursor, page } from '../http/pagination.ts';

/** How long a magic login URL is valid (the contract says 60 s). */
export const MAGIC_LOGIN_TTL_SECONDS = 60;
/** How long the API waits for the node (the contract's 10-second limit). */
export const MAGIC_LOGIN_NODE_TIMEOUT_MS = 10_000;

export interface MagicLoginSettings {
  /** Requests allowed per environment within `windowSeconds`. */
  maxPerWindow: number;
  windowSeconds: number;
  /** Overrides for tests. */
  nodeTimeoutMs?: number;
}

export interface IssuedMagicLogin {
  login_url: string;
  expires_at: string;
}

export interface MagicLoginAuditItem {
  id: string;
  environment_id: string;
  node_id: string | null;
  user_id: string | null;
  user_email: string | null;
  status: 'pending' | 'issued' | 'failed';
  error_code: string | null;
  created_at: string;
  expires_at: string | null;
}

export class MagicLoginService {
  readonly #db: Db;
  readonly #commands: CommandService;
  readonly #logger: Logger;
  readonly #settings: MagicLoginSettings;

  constructor(deps: { db: Db; commands: CommandService; logger: Logger; settings: MagicLoginSettings }) {
    this.#db = deps.db;
    this.#commands = deps.commands;
    this.#logger = deps.logger.child({ component: 'magic-login' });
    this.#settings = deps.settings;
  }

  async issue(environmentId: string, userId: string): Promise<IssuedMagicLogin> {
    const row = await findEnvironment(this.#db, environmentId);
    if (!row) throw new AppError('not_found', `environment ${environmentId} does not exist`);
    if (row.status !== 'active' || row.node_id === null) {
      throw new AppError(
        'environment_not_active',
        `environment ${environmentId} is ${row.status}, not active`,
      );
    }
    const [view] = await environmentViews(this.#db, [row]);
    if (!view?.url) {
      throw new AppError('environment_not_active', `environment ${environmentId} has no primary hostname`);
    }
    const nodeId = row.node_id;
    const auditId = await this.#reserve(environmentId, nodeId, userId);

    let output: unknown;
    try {
      const outcome = await this.#commands.sendAndWait(
        nodeId,
        {
          $case: 'createMagicLogin',
          value: {
            environment: environmentSpec(row),
            siteUrl: view.url,
            ttlSeconds: MAGIC_LOGIN_TTL_SECONDS,
          },
        },
        this.#settings.nodeTimeoutMs ?? MAGIC_LOGIN_NODE_TIMEOUT_MS,
      );
      // The output holds the URL: it is not kept in agent_commands.
      await this.#db
        .updateTable('agent_commands')
        .set({ output: null })
        .where('id', '=', outcome.commandId)
        .execute();
      output = outcome.output;
    } catch (err) {
      const failure = translate(err);
      await this.#finish(auditId, { status: 'failed', error_code: failure.code });
      throw failure;
    }

    const result = output as { login_url?: unknown; expires_at_ms?: unknown } | null;
    const loginUrl = result?.login_url;
    const expiresAtMs = result?.expires_at_ms;
    if (
      typeof loginUrl !== 'string' ||
      !loginUrl.startsWith(`${view.url}/`) ||
      typeof expiresAtMs !== 'number' ||
      !Number.isFinite(expiresAtMs)
    ) {
      await this.#finish(auditId, { status: 'failed', error_code: 'wp_cli_error' });
      throw new AppError('wp_cli_error', 'the node answered without a usable login URL');
    }
    const expiresAt = new Date(expiresAtMs);
    await this.#finish(auditId, { status: 'issued', expires_at: expiresAt });
    this.#logger.info(
      { environment_id: environmentId, node_id: nodeId, user_id: userId, magic_login_id: auditId },
      'magic login issued',
    );
    return { login_url: loginUrl, expires_at: expiresAt.toISOString() };
  }

  async list(
    environmentId: string,
    query: { limit: number; cursor?: string | undefined },
  ): Promise<{ items: MagicLoginAuditItem[]; next_cursor: string | null }> {
    const environment = await this.#db
      .selectFrom('environments')
      .select('id')
      .where('id', '=', environmentId)
      .executeTakeFirst();
    if (!environment) throw new AppError('not_found', `environment ${environmentId} does not exist`);
    const before = decodeCursor(query.cursor);
    let select = this.#db
      .selectFrom('magic_logins')
      .leftJoin('users', 'users.id', 'magic_logins.user_id')
      .select([
        'magic_logins.id',
        'magic_logins.seq',
        'magic_logins.environment_id',
        'magic_logins.node_id',
        'magic_logins.user_id',
        'users.email as user_email',
        'magic_logins.status',
        'magic_logins.error_code',
        'magic_logins.created_at',
        'magic_logins.expires_at',
      ])
      .where('magic_logins.environment_id', '=', environmentId);
    if (before !== undefined) select = select.where('magic_logins.seq', '<', before);
    const rows = await select
      .orderBy('magic_logins.seq', 'desc')
      .limit(query.limit + 1)
      .execute();
    return page(rows, query.limit, (r) => ({
      id: r.id,
      environment_id: r.environment_id,
      node_id: r.node_id,
      user_id: r.user_id,
      user_email: r.user_email ?? null,
      status: r.status,
      error_code: r.error_code,
      created_at: r.created_at.toISOString(),
      expires_at: r.expires_at ? r.expires_at.toISOString() : null,
    }));
  }

  /**
   * The rate limit and the audit row, in one transaction serialised per environment (an advisory
   * lock), so concurrent requests on any replica cannot exceed the limit.
   */
  async #reserve(environmentId: string, nodeId: string, userId: string): Promise<string> {
    const { maxPerWindow, windowSeconds } = this.#settings;
    return this.#db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtextextended(${`magic-login:${environmentId}`}, 0))`.execute(
        trx,
      );
      const recent = await trx
        .selectFrom('magic_logins')
        .select(['created_at'])
        .where('environment_id', '=', environmentId)
        .where('created_at', '>', sql<Date>`now() - make_interval(secs => ${windowSeconds})`)
        .orderBy('created_at', 'asc')
        .execute();
      if (recent.length >= maxPerWindow) {
        const { now } = await sql<{ now: Date }>`select now() as now`
          .execute(trx)
          .then((r) => r.rows[0] as { now: Date });
        const oldest = (recent[0] as { created_at: Date }).created_at.getTime();
        const retryAfter = Math.max(1, Math.ceil((oldest + windowSeconds * 1000 - now.getTime()) / 1000));
        throw new AppError(
          'rate_limited',
          `at most ${maxPerWindow} magic logins per environment every ${windowSeconds} s; try again in ${retryAfter} s`,
          { headers: { 'retry-after': String(retryAfter) } },
        );
      }
      const inserted = await trx
        .insertInto('magic_logins')
        .values({ environment_id: environmentId, node_id: nodeId, user_id: userId, status: 'pending' })
        .returning('id')
        .executeTakeFirstOrThrow();
      return inserted.id;
    });
  }

  async #finish(
    id: string,
    values: { status: 'issued' | 'failed'; error_code?: string; expires_at?: Date },
  ): Promise<void> {
    await this.#db.updateTable('magic_logins').set(values).where('id', '=', id).execute();
  }
}

/**
 * The contract's codes: `node_unreachable` when the node cannot be asked or does not answer in
 * time, `wp_cli_error` (with the node's message) when the node-side operation failed.
 */
function translate(err: unknown): AppError {
  if (!(err instanceof AppError)) {
    return new AppError('internal_error', 'magic login failed', { cause: err });
  }
  switch (err.code) {
    case 'node_unreachable':
      return err;
    case 'node_disabled':
    case 'command_interrupted':
    case 'command_cancelled':
      return new AppError('node_unreachable', err.message, { cause: err });
    case 'not_found':
      return err;
    default:
      return new AppError('wp_cli_error', isErrorCode(err.code) ? err.message : 'the node failed', {
        cause: err,
      });
  }
}
