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
  /** Jobs with the same key (an environment id) run one at a time, in `seq` order. */
  group_key: string | null;
  /** The pg-boss job carrying this one, when it is not `id` (see the ordering rule in job-runner.ts). */
  carrier_id: string | null;
  created_at: Generated<Date>;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  updated_at: Generated<Date>;
}

export interface CertificateAuthoritiesTable {
  name: string;
  certificate_pem: string;
  /** The CA's private key, sealed with the master key (SecretBox). */
  private_key_sealed: string;
  created_at: Generated<Date>;
}

/** Stored node status; `offline` is derived from last_heartbeat_at and never stored. */
export type StoredNodeStatus = 'pending' | 'active' | 'disabled';

export interface NodesTable {
  id: Generated<string>;
  seq: Generated<string>;
  name: string;
  status: StoredNodeStatus;
  /** sha256 of the join token: the token itself is never stored. */
  join_token_hash: Buffer | null;
  join_token_expires_at: Timestamp | null;
  join_token_used_at: Timestamp | null;
  enrolled_at: Timestamp | null;
  agent_version: string | null;
  hostname: string | null;
  last_heartbeat_at: Timestamp | null;
  stats: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  reported_liveness: 'active' | 'offline' | null;
  certificate_serial: string | null;
  previous_certificate_serial: string | null;
  certificate_fingerprint: string | null;
  certificate_not_after: Timestamp | null;
  stream_session: string | null;
  stream_replica: string | null;
  stream_connected_at: Timestamp | null;
  disabled_at: Timestamp | null;
  /** Default hostnames of its environments are `<site>--<env>.<base_domain>`. */
  base_domain: string;
  public_scheme: Generated<'http' | 'https'>;
  /** null: the scheme's default port. */
  public_port: number | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type CommandStatus =
  | 'pending'
  | 'delivered'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'interrupted'
  | 'cancelled'
  | 'expired';

export const OPEN_COMMAND_STATUSES = ['pending', 'delivered', 'running'] as const satisfies CommandStatus[];

export interface CommandProgress {
  phase: string;
  percent: number;
  message: string;
}

export interface AgentCommandsTable {
  id: string;
  seq: Generated<string>;
  node_id: string;
  job_id: string | null;
  step: string | null;
  generation: Generated<number>;
  /** The payload case, e.g. `ping`. */
  type: string;
  /** The Command.payload oneof as ts-proto JSON (`{ "$case": "ping", "value": {} }`). */
  payload: Json;
  environment_key: string | null;
  status: CommandStatus;
  deadline_at: Timestamp;
  progress: ColumnType<CommandProgress | null, string | null | undefined, string | null>;
  output: Json | null;
  error_code: string | null;
  error_message: string | null;
  cancel_requested_at: Timestamp | null;
  created_at: Generated<Date>;
  delivered_at: Timestamp | null;
  acknowledged_at: Timestamp | null;
  finished_at: Timestamp | null;
}

export type JobLogStream = 'stdout' | 'stderr' | 'agent' | 'progress';

export interface JobLogsTable {
  seq: Generated<string>;
  job_id: string;
  command_id: string | null;
  stream: JobLogStream;
  line: string;
  created_at: Generated<Date>;
}

export type SiteStatus = 'provisioning' | 'active' | 'deleting' | 'failed';

export interface SitesTable {
  id: Generated<string>;
  seq: Generated<string>;
  name: string;
  slug: string;
  status: SiteStatus;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type EnvironmentStatus = 'provisioning' | 'active' | 'updating' | 'deleting' | 'failed';
export type EnvironmentType = 'production' | 'staging' | 'development';
export type PromotionPreset = 'code-only' | 'code-and-db' | 'db-only' | 'woocommerce-safe';

export interface EnvironmentsTable {
  id: Generated<string>;
  seq: Generated<string>;
  site_id: string;
  name: string;
  slug: string;
  type: EnvironmentType;
  status: EnvironmentStatus;
  node_id: string | null;
  short_id: string;
  /** `<site>--<env>`. */
  node_name: string;
  system_user: string;
  database_name: string;
  database_user: string;
  redis_prefix: string;
  wordpress_version: string | null;
  fastcgi_cache_enabled: Generated<boolean>;
  redis_cache_enabled: Generated<boolean>;
  last_deployed_ref: string | null;
  promotion_preset: PromotionPreset;
  source_environment_id: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type DomainStatus = 'pending' | 'active' | 'removing';

export interface DomainsTable {
  id: Generated<string>;
  seq: Generated<string>;
  environment_id: string;
  hostname: string;
  is_default: Generated<boolean>;
  is_primary: Generated<boolean>;
  status: DomainStatus;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** The magic-login audit trail (never the URL or the token). */
export interface MagicLoginsTable {
  id: Generated<string>;
  seq: Generated<string>;
  environment_id: string;
  node_id: string | null;
  /** The session user who asked. */
  user_id: string | null;
  status: 'pending' | 'issued' | 'failed';
  error_code: string | null;
  created_at: Generated<Date>;
  expires_at: Timestamp | null;
}

export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  login_failures: LoginFailuresTable;
  jobs: JobsTable;
  certificate_authorities: CertificateAuthoritiesTable;
  nodes: NodesTable;
  agent_commands: AgentCommandsTable;
  job_logs: JobLogsTable;
  sites: SitesTable;
  environments: EnvironmentsTable;
  domains: DomainsTable;
  magic_logins: MagicLoginsTable;
}

export type JobRow = Selectable<JobsTable>;
export type NewJob = Insertable<JobsTable>;
export type JobUpdate = Updateable<JobsTable>;
export type SessionRow = Selectable<SessionsTable>;
export type UserRow = Selectable<UsersTable>;
export type NodeRow = Selectable<NodesTable>;
export type AgentCommandRow = Selectable<AgentCommandsTable>;
export type SiteRow = Selectable<SitesTable>;
export type EnvironmentRow = Selectable<EnvironmentsTable>;
export type DomainRow = Selectable<DomainsTable>;
