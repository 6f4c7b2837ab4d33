import type { CreatedNode, CreateNodeRequest, Node, NodeListQuery, NodeStats } from '@wpcp/shared/api';
import { AppError } from '@wpcp/shared/errors';
import type { Logger } from 'pino';
import type { AgentCa } from '../agent-gateway/agent-ca.ts';
import { withdrawPendingCommandsOfNode } from '../agent-gateway/commands.queries.ts';
import type { Db } from '../database/database.ts';
import { CHANNELS, notify } from '../database/notifier.ts';
import { decodeCursor, page } from '../http/pagination.ts';
import type { JobEnqueuer } from '../jobs/enqueue.ts';
import { hashJoinToken, newJoinToken } from './join-token.ts';
import { NODE_PING_JOB } from './node-ping.job.ts';
import * as q from './nodes.queries.ts';

export interface NodesSettings {
  joinTokenTtlSeconds: number;
  offlineAfterMs: number;
  /** Defaults for what a new node's sites are reached under (config WPCP_NODE_*). */
  siteDefaults: { baseDomain?: string; publicScheme: 'http' | 'https'; publicPort?: number };
}

/** Nodes are control-plane records: these answer synchronously. Anything that runs on a node is a job. */
export class NodesService {
  readonly #db: Db;
  readonly #ca: AgentCa;
  readonly #enqueuer: JobEnqueuer;
  readonly #logger: Logger;
  readonly #settings: NodesSettings;

  constructor(deps: { db: Db; ca: AgentCa; enqueuer: JobEnqueuer; logger: Logger; settings: NodesSettings }) {
    this.#db = deps.db;
    this.#ca = deps.ca;
    this.#enqueuer = deps.enqueuer;
    this.#logger = deps.logger;
    this.#settings = deps.settings;
  }

  /** A new node and its one-time join token (shown only here; only its hash is kept). */
  async create(request: CreateNodeRequest): Promise<CreatedNode> {
    const token = newJoinToken(this.#ca.pin);
    const expiresAt = new Date(Date.now() + this.#settings.joinTokenTtlSeconds * 1000);
    try {
      const defaults = this.#settings.siteDefaults;
      const row = await q.insertNode(this.#db, {
        name: request.name,
        tokenHash: hashJoinToken(token),
        tokenExpiresAt: expiresAt,
        baseDomain: request.base_domain ?? defaults.baseDomain ?? `${request.name}.wpcp.localhost`,
        publicScheme: request.public_scheme ?? defaults.publicScheme,
        publicPort: request.public_port ?? defaults.publicPort ?? null,
      });
      this.#logger.info({ node_id: row.id, node_name: row.name }, 'node created');
      return {
        id: row.id,
        name: row.name,
        join_token: token,
        join_token_expires_at: (row.join_token_expires_at as Date).toISOString(),
      };
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw new AppError('name_taken', `a node named ${request.name} already exists`);
      }
      throw error;
    }
  }

  async list(query: NodeListQuery) {
    const rows = await q.listNodes(
      this.#db,
      this.#settings.offlineAfterMs,
      { status: query.status },
      { limit: query.limit, beforeSeq: decodeCursor(query.cursor) },
    );
    return page(rows, query.limit, toApiNode);
  }

  async get(id: string): Promise<Node> {
    const row = await q.findNode(this.#db, id, this.#settings.offlineAfterMs);
    if (!row) throw new AppError('not_found', `node ${id} does not exist`);
    return toApiNode(row);
  }

  /**
   * Disables a node: its certificate is refused from now on, its open stream is closed by the
   * replica holding it (NOTIFY), and its commands still waiting for delivery are withdrawn.
   */
  async disable(id: string): Promise<Node> {
    const withdrawn = await this.#db.transaction().execute(async (trx) => {
      if (!(await q.disableNode(trx, id))) throw new AppError('not_found', `node ${id} does not exist`);
      const commands = await withdrawPendingCommandsOfNode(
        trx,
        id,
        'node_disabled',
        'the node was disabled before it took the command; it will never run',
      );
      await notify(trx, CHANNELS.nodeDisabled, id);
      for (const { id: commandId } of commands) await notify(trx, CHANNELS.commandResults, commandId);
      return commands.length;
    });
    this.#logger.info({ node_id: id, withdrawn_commands: withdrawn }, 'node disabled');
    return this.get(id);
  }

  async enable(id: string): Promise<Node> {
    if (await q.enableNode(this.#db, id)) this.#logger.info({ node_id: id }, 'node enabled');
    return this.get(id);
  }

  /** Runs a `ping` through the whole command path as a job. */
  async ping(id: string): Promise<{ job_id: string }> {
    const node = await q.nodeExists(this.#db, id);
    if (!node) throw new AppError('not_found', `node ${id} does not exist`);
    if (node.status === 'disabled') throw new AppError('node_disabled', `node ${id} is disabled`);
    const jobId = await this.#enqueuer.enqueue({
      type: NODE_PING_JOB,
      payload: { node_id: id },
      target: { type: 'node', id },
    });
    return { job_id: jobId };
  }
}

const STAT_FIELDS = [
  'load1',
  'load5',
  'load15',
  'mem_total_bytes',
  'mem_available_bytes',
  'disk_total_bytes',
  'disk_free_bytes',
] as const;

function toStats(stats: Record<string, unknown> | null): NodeStats | null {
  if (!stats) return null;
  const out: Record<string, number> = {};
  for (const field of STAT_FIELDS) {
    const value = stats[field];
    out[field] = typeof value === 'number' && Number.isFinite(value) ? value : 0;
  }
  return out as NodeStats;
}

export function toApiNode(row: q.NodeView): Node {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    agent_version: row.agent_version,
    hostname: row.hostname,
    last_heartbeat_at: row.last_heartbeat_at?.toISOString() ?? null,
    enrolled_at: row.enrolled_at?.toISOString() ?? null,
    stats: toStats(row.stats),
    running_commands: Number(row.running_commands ?? 0),
    certificate_expires_at: row.certificate_not_after?.toISOString() ?? null,
    disabled_at: row.disabled_at?.toISOString() ?? null,
    base_domain: row.base_domain,
    public_scheme: row.public_scheme,
    public_port: row.public_port,
    created_at: row.created_at.toISOString(),
  };
}
