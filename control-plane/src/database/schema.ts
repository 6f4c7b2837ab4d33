import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/**
 * The tables of the control plane as kysely sees them. One interface per table; migrations in
 * ./migrations are the source of the actual SQL and stay frozen in time (typed Kysely<any>).
 */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json = ColumnType<unknown, string | undefined, string>;

export interface UsersTable {
  id: Generated<string>;
  email: string;
  password_hash: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface SessionsTable {
  id: Generated<string>;
  user_id: string;
  /** sha256 of the bearer token: the token itself is never stored. */
  token_hash: Buffer;
  created_at: Generated<Date>;
  last_seen_at: Timestamp;
  expires_at: Timestamp;
  revoked_at: Timestamp | null;
}

export interface LoginFailuresTable {
  id: Generated<string>;
  /** `address:<ip>` or `account:<email>`: one row per failed attempt, counted per scope. */
  scope: string;
  created_at: Generated<Date>;
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

export interface JobStep {
  name: string;
  status: StepStatus;
  started_at: string | null;
  finished_at: string | null;
}

export interface JobsTable {
  id: string;
  /** Monotonic order of creation: the keyset for pagination (timestamps can tie). */
  seq: Generated<string>;
  type: string;
  status: JobStatus;
  target_type: string | null;
  target_id: string | null;
  payload: Json;
  output: Json | null;
  steps: ColumnType<JobStep[], string | undefined, string>;
  /** What earlier steps handed on to later ones; kept so a retried attempt resumes with it. */
  state: ColumnType<Record<string, unknown>, string | undefined, string>;
  error_code: string | null;
  error_message: string | null;
  attempt: Generated<number>;
  max_attempts: number;
  cancel_requested_at: Timestamp | null;
  created_at: Generated<Date>;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  updated_at: Generated<Date>;
}

export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  login_failures: LoginFailuresTable;
  jobs: JobsTable;
}

export type JobRow = Selectable<JobsTable>;
export type NewJob = Insertable<JobsTable>;
export type JobUpdate = Updateable<JobsTable>;
export type SessionRow = Selectable<SessionsTable>;
export type UserRow = Selectable<UsersTable>;
