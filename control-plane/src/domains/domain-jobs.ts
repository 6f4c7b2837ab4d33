import { AppError } from '@wpcp/shared/errors';
import { Uuid } from '@wpcp/shared/validation';
import { z } from 'zod';
import type { DomainRow } from '../database/schema.ts';
import { type LoadedEnvironment, loadEnvironment } from '../environments/environment-steps.ts';
import type { StepContext } from '../jobs/job-definition.ts';
import { baseDomainCovering, domainWithHostname } from './domains.queries.ts';

/** What the three domain jobs share: their payload, and loading the domain with its environment. */

export const DomainJobPayload = z.strictObject({ environment_id: Uuid, domain_id: Uuid });
export type DomainJobPayload = z.infer<typeof DomainJobPayload>;

export async function loadDomain(
  ctx: StepContext<DomainJobPayload>,
): Promise<{ loaded: LoadedEnvironment; domain: DomainRow }> {
  const loaded = await loadEnvironment(ctx, ctx.payload.environment_id);
  const domain = loaded.domains.find((d) => d.id === ctx.payload.domain_id);
  if (!domain) throw new AppError('not_found', `domain ${ctx.payload.domain_id} no longer exists`);
  return { loaded, domain };
}

/** Domain changes need a provisioned environment; jobs ahead of this one may have changed it. */
export function assertEnvironmentActive(loaded: LoadedEnvironment): void {
  if (loaded.environment.status !== 'active') {
    throw new AppError(
      'invalid_state',
      `environment ${loaded.environment.id} is ${loaded.environment.status}; domains change only on an active environment`,
    );
  }
}

/**
 * The hostname checks of the request, made again inside the job: unique across the fleet, and
 * not a node's base domain or under one (reserved for default hostnames).
 */
export async function assertHostnameFree(
  ctx: StepContext<DomainJobPayload>,
  domain: DomainRow,
): Promise<void> {
  const holder = await domainWithHostname(ctx.db, domain.hostname);
  if (holder && holder.id !== domain.id) {
    throw new AppError(
      'hostname_taken',
      `${domain.hostname} is already a domain of environment ${holder.environment_id}`,
    );
  }
  const reserved = await baseDomainCovering(ctx.db, domain.hostname);
  if (reserved) {
    throw new AppError(
      'hostname_reserved',
      `${domain.hostname} is under the base domain ${reserved.base_domain} of node ${reserved.name}, reserved for default hostnames`,
    );
  }
}
