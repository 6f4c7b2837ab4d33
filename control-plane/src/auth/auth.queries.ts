import { sql } from 'kysely';
import type { Db } from '../database/database.ts';

export function findUserByEmail(db: Db, email: string) {
  return db
    .selectFrom('users')
    .select(['id', 'email', 'password_hash'])
    .where('email', '=', email)
    .executeTakeFirst();
}

export async function upsertAdminUser(
  db: Db,
  email: string,
  passwordHash: string,
): Promise<'created' | 'exists'> {
  const inserted = await db
    .insertInto('users')
    .values({ email, password_hash: passwordHash })
    .onConflict((oc) => oc.column('email').doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted ? 'created' : 'exists';
}

export function countUsers(db: Db) {
  return db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .executeTakeFirstOrThrow();
}

export function insertSession(
  db: Db,
  session: { userId: string; tokenHash: Buffer; now: Date; expiresAt: Date },
) {
  return db
    .insertInto('sessions')
    .values({
      user_id: session.userId,
      token_hash: session.tokenHash,
      last_seen_at: session.now,
      expires_at: session.expiresAt,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

/** The session a token names, if it is neither revoked, past its lifetime, nor idle too long. */
export function findLiveSession(db: Db, tokenHash: Buffer, now: Date, idleSeconds: number) {
  return db
    .selectFrom('sessions')
    .select(['id', 'user_id', 'last_seen_at'])
    .where('token_hash', '=', tokenHash)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .where('last_seen_at', '>', new Date(now.getTime() - idleSeconds * 1000))
    .executeTakeFirst();
}

export function touchSession(db: Db, sessionId: string, now: Date) {
  return db.updateTable('sessions').set({ last_seen_at: now }).where('id', '=', sessionId).execute();
}

export function revokeSession(db: Db, sessionId: string, now: Date) {
  return db.updateTable('sessions').set({ revoked_at: now }).where('id', '=', sessionId).execute();
}

export function deleteDeadSessions(db: Db, now: Date, idleSeconds: number) {
  return db
    .deleteFrom('sessions')
    .where((eb) =>
      eb.or([
        eb('expires_at', '<=', now),
        eb('revoked_at', 'is not', null),
        eb('last_seen_at', '<=', new Date(now.getTime() - idleSeconds * 1000)),
      ]),
    )
    .executeTakeFirst();
}

export function recordLoginFailure(db: Db, scopes: string[], now: Date) {
  return db
    .insertInto('login_failures')
    .values(scopes.map((scope) => ({ scope, created_at: now })))
    .execute();
}

/** Failures per scope inside the window, and the oldest one (it decides Retry-After). */
export function loginFailuresSince(db: Db, scopes: string[], since: Date) {
  return db
    .selectFrom('login_failures')
    .select(['scope', sql<string>`count(*)`.as('failures'), sql<Date>`min(created_at)`.as('oldest')])
    .where('scope', 'in', scopes)
    .where('created_at', '>', since)
    .groupBy('scope')
    .execute();
}

export function clearLoginFailures(db: Db, scope: string) {
  return db.deleteFrom('login_failures').where('scope', '=', scope).execute();
}

export function deleteLoginFailuresBefore(db: Db, before: Date) {
  return db.deleteFrom('login_failures').where('created_at', '<=', before).executeTakeFirst();
}
