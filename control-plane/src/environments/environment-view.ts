import type { EnvironmentSpec } from '@wpcp/shared/agent-protocol';
import type { Domain, Environment } from '@wpcp/shared/api';
import type { Db } from '../database/database.ts';
import type { DomainRow, EnvironmentRow } from '../database/schema.ts';
import { domainsOfEnvironments, nodesForViews } from './environments.queries.ts';

/** What the URLs of a node's sites are made of. */
export interface NodeReach {
  public_scheme: 'http' | 'https';
  public_port: number | null;
}

/** `http(s)://<hostname>[:port]`, the port only when it is not the scheme's default. */
export function siteUrl(node: NodeReach, hostname: string): string {
  const defaultPort = node.public_scheme === 'https' ? 443 : 80;
  const port = node.public_port && node.public_port !== defaultPort ? `:${node.public_port}` : '';
  return `${node.public_scheme}://${hostname}${port}`;
}

/** The names of the environment on its node, as the protocol carries them. */
export function environmentSpec(row: EnvironmentRow): EnvironmentSpec {
  return {
    name: row.node_name,
    systemUser: row.system_user,
    databaseName: row.database_name,
    databaseUser: row.database_user,
    redisPrefix: row.redis_prefix,
  };
}

/** Served domains (`active`, and `removing` until its job is done), the primary first, then oldest first. */
export function servedHostnames(domains: DomainRow[]): string[] {
  return domains
    .filter((d) => d.status === 'active' || d.status === 'removing')
    .sort((a, b) => Number(b.is_primary) - Number(a.is_primary) || Number(a.seq) - Number(b.seq))
    .map((d) => d.hostname);
}

export function toApiDomain(row: DomainRow): Domain {
  return {
    id: row.id,
    environment_id: row.environment_id,
    hostname: row.hostname,
    is_default: row.is_default,
    is_primary: row.is_primary,
    status: row.status,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export function toApiEnvironment(
  row: EnvironmentRow,
  node: NodeReach | undefined,
  domains: DomainRow[],
): Environment {
  const primary = domains.find((d) => d.is_primary)?.hostname ?? null;
  return {
    id: row.id,
    site_id: row.site_id,
    name: row.name,
    slug: row.slug,
    type: row.type,
    status: row.status,
    node_id: row.node_id,
    on_node: {
      name: row.node_name,
      system_user: row.system_user,
      database_name: row.database_name,
      database_user: row.database_user,
      redis_prefix: row.redis_prefix,
    },
    default_hostname: domains.find((d) => d.is_default)?.hostname ?? null,
    primary_hostname: primary,
    hostnames: servedHostnames(domains),
    url: node && primary ? siteUrl(node, primary) : null,
    wordpress_version: row.wordpress_version,
    fastcgi_cache_enabled: row.fastcgi_cache_enabled,
    redis_cache_enabled: row.redis_cache_enabled,
    last_deployed_ref: row.last_deployed_ref,
    promotion_preset: row.promotion_preset,
    source_environment_id: row.source_environment_id,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** API views of environment rows, with their nodes and domains read in two queries. */
export async function environmentViews(db: Db, rows: EnvironmentRow[]): Promise<Environment[]> {
  const nodeIds = [...new Set(rows.map((r) => r.node_id).filter((id): id is string => id !== null))];
  const [nodes, domains] = await Promise.all([
    nodesForViews(db, nodeIds),
    domainsOfEnvironments(
      db,
      rows.map((r) => r.id),
    ),
  ]);
  return rows.map((row) =>
    toApiEnvironment(
      row,
      nodes.find((n) => n.id === row.node_id),
      domains.filter((d) => d.environment_id === row.id),
    ),
  );
}
