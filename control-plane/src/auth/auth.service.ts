import { AppError } from '@wpcp/shared/errors';
import type { Config } from '../config.ts';
import type { Db } from '../database/database.ts';
import * as q from './auth.queries.ts';
import { decoyPasswordHash, verifyPassword } from './password.ts';
import { hashSessionToken, looksLikeSessionToken, newSessionToken } from './session-token.ts';

export interface Session {
  id: string;
  userId: string;
}

/** Sessions are refreshed at most this often, so a busy client does not write on every request. */
const TOUCH_EVERY_MS = 60_000;

export class AuthService {
  readonly #db: Db;
  readonly #config: Pick<Config, 'sessions' | 'loginRateLimit'>;
  readonly #now: () => Date;

  constructor(
    db: Db,
    config: Pick<Config, 'sessions' | 'loginRateLimit'>,
    now: () => Date = () => new Date(),
  ) {
    this.#db = db;
    this.#config = config;
    this.#now = now;
  }

  /**
   * Checks the rate limit first (per client address and per account), then the password. An
   * unknown email is verified against a decoy hash so both failures look and time the same.
   */
  async login(email: string, password: string, clientAddress: string): Promise<string> {
    const now = this.#now();
    const scopes = [`address:${clientAddress}`, `account:${email}`];
    await this.#refuseWhenRateLimited(scopes, now);

    const user = await q.findUserByEmail(this.#db, email);
    const valid = await verifyPassword(password, user?.password_hash ?? (await decoyPasswordHash));
    if (!user || !valid) {
      await q.recordLoginFailure(this.#db, scopes, now);
      throw new AppError('invalid_credentials', 'email or password is incorrect');
    }

    await q.clearLoginFailures(this.#db, `account:${email}`);
    const token = newSessionToken();
    await q.insertSession(this.#db, {
      userId: user.id,
      tokenHash: hashSessionToken(token),
      now,
      expiresAt: new Date(now.getTime() + this.#config.sessions.maxSeconds * 1000),
    });
    return token;
  }

  async #refuseWhenRateLimited(scopes: string[], now: Date): Promise<void> {
    const { maxFailures, windowSeconds } = this.#config.loginRateLimit;
    const windowStart = new Date(now.getTime() - windowSeconds * 1000);
    const counts = await q.loginFailuresSince(this.#db, scopes, windowStart);
    const blocked = counts.filter((row) => Number(row.failures) >= maxFailures);
    if (blocked.length === 0) return;
    // The limit lifts when the oldest failure in the window ages out of it.
    const oldest = Math.min(...blocked.map((row) => new Date(row.oldest).getTime()));
    const retryAfter = Math.max(1, Math.ceil((oldest + windowSeconds * 1000 - now.getTime()) / 1000));
    throw new AppError('rate_limited', 'too many failed logins; try again later', {
      headers: { 'retry-after': String(retryAfter) },
    });
  }

  /** The live session a bearer token names, or an `unauthorized` error. */
  async authenticate(token: string | undefined): Promise<Session> {
    if (!token || !looksLikeSessionToken(token)) {
      throw new AppError('unauthorized', 'a valid session token is required (Authorization: Bearer <token>)');
    }
    const now = this.#now();
    const session = await q.findLiveSession(
      this.#db,
      hashSessionToken(token),
      now,
      this.#config.sessions.idleSeconds,
    );
    if (!session) throw new AppError('unauthorized', 'the session token is unknown, expired or revoked');
    if (now.getTime() - session.last_seen_at.getTime() > TOUCH_EVERY_MS) {
      await q.touchSession(this.#db, session.id, now);
    }
    return { id: session.id, userId: session.user_id };
  }

  async logout(session: Session): Promise<void> {
    await q.revokeSession(this.#db, session.id, this.#now());
  }

  /** Housekeeping: forget sessions and login failures that can no longer matter. */
  async prune(): Promise<{ sessions: number; loginFailures: number }> {
    const now = this.#now();
    const sessions = await q.deleteDeadSessions(this.#db, now, this.#config.sessions.idleSeconds);
    const failures = await q.deleteLoginFailuresBefore(
      this.#db,
      new Date(now.getTime() - this.#config.loginRateLimit.windowSeconds * 1000),
    );
    return { sessions: Number(sessions.numDeletedRows), loginFailures: Number(failures.numDeletedRows) };
  }
}
