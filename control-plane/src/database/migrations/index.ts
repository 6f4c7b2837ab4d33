import type { Migration, MigrationProvider } from 'kysely/migration';
import * as foundation from './0001-foundation.ts';
import * as fleet from './0002-fleet.ts';
import * as sites from './0003-sites.ts';
import * as deletion from './0004-deletion.ts';
import * as magicLogins from './0005-magic-logins.ts';

/**
 * Every migration, listed explicitly (not scanned from the folder) so the order is reviewed code.
 * Names sort in the order they run; never rename or edit one that has shipped: add a new one.
 */
const migrations: Record<string, Migration> = {
  '0001-foundation': foundation,
  '0002-fleet': fleet,
  '0003-sites': sites,
  '0004-deletion': deletion,
  '0005-magic-logins': magicLogins,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
