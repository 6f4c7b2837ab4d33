import { type Kysely, sql } from 'kysely';

// Deleting environments and sites (DELETE /api/environments/{id}, DELETE /api/sites/{id}): both
// are `deleting` while their job removes them from the node; their rows go when it is done.
// Frozen in time: migrations use Kysely<any> so later schema types never change what they did.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table environments drop constraint environments_status_check`.execute(db);
  await sql`alter table environments add constraint environments_status_check
    check (status in ('provisioning', 'active', 'updating', 'deleting', 'failed'))`.execute(db);
  await sql`alter table sites drop constraint sites_status_check`.execute(db);
  await sql`alter table sites add constraint sites_status_check
    check (status in ('provisioning', 'active', 'deleting', 'failed'))`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`update environments set status = 'failed' where status = 'deleting'`.execute(db);
  await sql`update sites set status = 'failed' where status = 'deleting'`.execute(db);
  await sql`alter table environments drop constraint environments_status_check`.execute(db);
  await sql`alter table environments add constraint environments_status_check
    check (status in ('provisioning', 'active', 'updating', 'failed'))`.execute(db);
  await sql`alter table sites drop constraint sites_status_check`.execute(db);
  await sql`alter table sites add constraint sites_status_check
    check (status in ('provisioning', 'active', 'failed'))`.execute(db);
}
