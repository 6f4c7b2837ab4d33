import { z } from 'zod';
import { BaseDomain, NodeName, Uuid } from '../validation/index.ts';
import { ListQuery } from './pagination.ts';

/**
 * `pending`: created, not yet seen (no agent has enrolled, or it has not connected yet).
 * `active`: heartbeats arrive. `offline`: none for three heartbeat intervals (derived, never
 * stored). `disabled`: refused by the control plane until enabled again.
 */
export const NodeStatus = z.enum(['pending', 'active', 'offline', 'disabled']);
export type NodeStatus = z.infer<typeof NodeStatus>;

/** The scheme of the URLs of a node's sites. */
export const PublicScheme = z.enum(['http', 'https']);
export type PublicScheme = z.infer<typeof PublicScheme>;

/** The latest heartbeat's figures, as the node reported them. */
export const NodeStats = z
  .object({
    load1: z.number(),
    load5: z.number(),
    load15: z.number(),
    mem_total_bytes: z.number().int(),
    mem_available_bytes: z.number().int(),
    disk_total_bytes: z.number().int(),
    disk_free_bytes: z.number().int(),
  })
  .meta({ id: 'NodeStats' });
export type NodeStats = z.infer<typeof NodeStats>;

export const Node = z
  .object({
    id: Uuid,
    name: z.string(),
    status: NodeStatus,
    agent_version: z.string().nullable(),
    hostname: z.string().nullable(),
    last_heartbeat_at: z.string().nullable(),
    enrolled_at: z.string().nullable(),
    stats: NodeStats.nullable(),
    /** Commands handed to the node that have not reported a result yet. */
    running_commands: z.number().int(),
    /** When the node's client certificate expires (the agent renews it at two-thirds of its life). */
    certificate_expires_at: z.string().nullable(),
    disabled_at: z.string().nullable(),
    /** Default hostnames of its environments are `<site>--<env>.<base_domain>`. */
    base_domain: z.string(),
    /** How browsers reach its sites: the scheme and port of their URLs (`home`, `siteurl`). */
    public_scheme: PublicScheme,
    /** null: the scheme's default port (80 or 443). */
    public_port: z.number().int().nullable(),
    created_at: z.string(),
  })
  .meta({ id: 'Node' });
export type Node = z.infer<typeof Node>;

export const CreateNodeRequest = z.strictObject({
  name: NodeName,
  /** Default: WPCP_NODE_BASE_DOMAIN, or `<name>.wpcp.localhost` when that is unset. */
  base_domain: BaseDomain.optional(),
  /** Default: WPCP_NODE_PUBLIC_SCHEME (`http`). */
  public_scheme: PublicScheme.optional(),
  /** Default: WPCP_NODE_HTTP_PORT (unset: the scheme's default port). */
  public_port: z.number().int().min(1).max(65535).optional(),
});
export type CreateNodeRequest = z.infer<typeof CreateNodeRequest>;

/**
 * The answer to creating a node. `join_token` is shown once (only its hash is kept):
 * `wpcp1.<secret>.<ca-hash>`, where `<ca-hash>` is the lowercase hex sha256 of the DER
 * SubjectPublicKeyInfo of the control plane's agent CA, which the agent pins.
 */
export const CreatedNode = z
  .object({
    id: Uuid,
    name: z.string(),
    join_token: z.string(),
    join_token_expires_at: z.string(),
  })
  .meta({ id: 'CreatedNode' });
export type CreatedNode = z.infer<typeof CreatedNode>;

export const NodeListQuery = ListQuery.extend({ status: NodeStatus.optional() });
export type NodeListQuery = z.infer<typeof NodeListQuery>;
