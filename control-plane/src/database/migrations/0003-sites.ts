import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations use Kysely<any> so later schema types never change what they did.
export async function up(db: Kysely<any>): Promise<void> {
  // How a node's sites are reached. Nodes enrolled before this migration get the default the
  // control plane would give them today without WPCP_NODE_BASE_DOMAIN: `<name>.wpcp.localhost`.
  await db.schema.alterTable('nodes').addColumn('base_domain', 'text').execute();
  await sql`update nodes set base_domain = name || '.wpcp.localhost'`.execute(db);
  await db.schema
    .alterTable('nodes')
    .alterColumn('base_domain', (c) => c.setNotNull())
    .execute();
  await db.schema
    .alterTable('nodes')
    .addColumn('public_scheme', 'text', (c) =>
      c.notNull().defaultTo('http').check(sql`public_scheme in ('http', 'https')`),
    )
    .addColumn('public_port', 'integer', (c) => c.check(sql`public_port between 1 and 65535`))
    .execute();

  // Jobs of one environment carry its id as their group key: the runner starts a grouped job only
  // once every earlier job of its group has finished (docs/jobs.md, "Ordering").
  await db.schema
    .alterTable('jobs')
    .addColumn('group_key', 'text')
    // The pg-boss job that carries this one when it is not its own id (a job that waited for an
    // earlier one of its group was handed back under a new pg-boss job).
    .addColumn('carrier_id', 'uuid')
    .execute();
  await db.schema
    .createIndex('jobs_group_open_idx')
    .on('jobs')
    .columns(['group_key', 'seq'])
    .where(sql<boolean>`group_key is not null and status in ('queued', 'running')`)
    .execute();

  await db.schema
    .createTable('sites')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('seq', 'bigint', (c) => c.notNull().unique().generatedAlwaysAsIdentity())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('slug', 'text', (c) => c.notNull().unique())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('provisioning', 'active', 'failed')`),
    )
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('environments')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('seq', 'bigint', (c) => c.notNull().unique().generatedAlwaysAsIdentity())
    .addColumn('site_id', 'uuid', (c) => c.notNull().references('sites.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('slug', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) =>
      c.notNull().check(sql`type in ('production', 'staging', 'development')`),
    )
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('provisioning', 'active', 'updating', 'failed')`),
    )
    // Null until the provisioning job places it.
    .addColumn('node_id', 'uuid', (c) => c.references('nodes.id').onDelete('restrict'))
    // The names on the node: `<site>--<env>`, and the short id the system names derive from.
    .addColumn('short_id', 'text', (c) => c.notNull().unique())
    .addColumn('node_name', 'text', (c) => c.notNull().unique())
    .addColumn('system_user', 'text', (c) => c.notNull().unique())
    .addColumn('database_name', 'text', (c) => c.notNull())
    .addColumn('database_user', 'text', (c) => c.notNull())
    .addColumn('redis_prefix', 'text', (c) => c.notNull().unique())
    .addColumn('wordpress_version', 'text')
    .addColumn('fastcgi_cache_enabled', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('redis_cache_enabled', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('last_deployed_ref', 'text')
    .addColumn('promotion_preset', 'text', (c) =>
      c
        .notNull()
        .defaultTo('code-only')
        .check(sql`promotion_preset in ('code-only', 'code-and-db', 'db-only', 'woocommerce-safe')`),
    )
    .addColumn('source_environment_id', 'uuid', (c) => c.references('environments.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('environments_site_slug_key', ['site_id', 'slug'])
    .execute();
  await db.schema
    .createIndex('environments_one_production_idx')
    .on('environments')
    .column('site_id')
    .unique()
    .where(sql<boolean>`type = 'production'`)
    .execute();
  await db.schema.createIndex('environments_node_idx').on('environments').column('node_id').execute();

  await db.schema
    .createTable('domains')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('seq', 'bigint', (c) => c.notNull().unique().generatedAlwaysAsIdentity())
    .addColumn('environment_id', 'uuid', (c) => c.notNull().references('environments.id').onDelete('cascade'))
    // Unique across the fleet: one hostname is served by one environment.
    .addColumn('hostname', 'text', (c) => c.notNull().unique())
    .addColumn('is_default', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('is_primary', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'active', 'removing')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('domains_one_primary_idx')
    .on('domains')
    .column('environment_id')
    .unique()
    .where(sql<boolean>`is_primary`)
    .execute();
  await db.schema
    .createIndex('domains_one_default_idx')
    .on('domains')
    .column('environment_id')
    .unique()
    .where(sql<boolean>`is_default`)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['domains', 'environments', 'sites']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
  await db.schema.dropIndex('jobs_group_open_idx').ifExists().execute();
  await db.schema.alterTable('jobs').dropColumn('group_key').dropColumn('carrier_id').execute();
  await db.schema
    .alterTable('nodes')
    .dropColumn('base_domain')
    .dropColumn('public_scheme')
    .dropColumn('public_port')
    .execute();
}
