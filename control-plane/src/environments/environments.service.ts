import type { Environment } from '@wpcp/shared/api';
import { AppError } from '@wpcp/shared/errors';
import type { Db } from '../database/database.ts';
import { environmentViews } from './environment-view.ts';
import { findEnvironment } from './environments.queries.ts';

/** Reading environments. Creating one belongs to its site (SitesService.createEnvironment). */
export class EnvironmentsService {
  readonly #db: Db;

  constructor(deps: { db: Db }) {
    this.#db = deps.db;
  }

  async get(id: string): Promise<Environment> {
    const row = await findEnvironment(this.#db, id);
    if (!row) throw new AppError('not_found', `environment ${id} does not exist`);
    const [view] = await environmentViews(this.#db, [row]);
    return view as Environment;
  }
}
