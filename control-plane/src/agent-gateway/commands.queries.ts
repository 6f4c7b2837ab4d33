import { sql } from 'kysely';
import type { Db } from '../database/database.ts';
import type { CommandProgress, CommandStatus } from '../database/schema.ts';

/**
 * Every statement on `agent_commands`. Status moves only forward: pending → delivered → running →
 * one final status; each transition is a conditional UPDATE on the current status, so two replicas
 * (or a waiter and the gateway) can race on a row and exactly one wins.
 */
export const FINAL_STATUSES = ['succeeded', 'failed', 'interrupted', 'cancelled', 'expired'] as const;
export type FinalStatus = (typeof FINAL_STATUSES)[number];

export function isFinal(status: CommandStatus): status is FinalStatus {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

export interface NewCommand {
  id: string;
  nodeId: string;
  jobId: string | null;
  step: string | null;
  generation: number;
  type: string;
  payload: unknown;
  environmentKey: string | null;
  deadlineMs: number;
}

/** Inserts the command unless a row with its id exists (a retried step re-attaches to it). */
export function insertCommand(db: Db, command: NewCommand) {
  return db
    .insertInto('agent_commands')
    .values({
      id: command.id,
      node_id: command.nodeId,
      job_id: command.jobId,
      step: command.step,
      generation: command.generation,
      type: command.type,
      payload: JSON.stringify(command.payload),
      environment_key: command.environmentKey,
      status: 'pending',
      deadline_at: sql`now() + make_interval(secs => ${command.deadlineMs / 1000})`,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

export function findCommand(db: Db, id: string) {
  return db.selectFrom('agent_commands').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The newest generation of a job step's command, if the step ever sent one. */
export function latestCommandOfStep(db: Db, jobId: string, step: string) {
  return db
    .selectFrom('agent_commands')
    .selectAll()
    .where('job_id', '=', jobId)
    .where('step', '=', step)
    .orderBy('generation', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** Withdraws a command nobody has been handed yet; it can never be delivered afterwards. */
export function withdrawPendingCommand(
  db: Db,
  id: string,
  outcome: { status: 'expired' | 'cancelled'; errorCode: string; errorMessage: string },
) {
  return db
    .updateTable('agent_commands')
    .set({
      status: outcome.status,
      error_code: outcome.errorCode,
      error_message: outcome.errorMessage,
      finished_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .returningAll()
    .executeTakeFirst();
}

/** Withdraws every pending command of a node (it was disabled); returns their ids. */
export function withdrawPendingCommandsOfNode(
  db: Db,
  nodeId: string,
  errorCode: string,
  errorMessage: string,
) {
  return db
    .updateTable('agent_commands')
    .set({ status: 'expired', error_code: errorCode, error_message: errorMessage, finished_at: sql`now()` })
    .where('node_id', '=', nodeId)
    .where('status', '=', 'pending')
    .returning('id')
    .execute();
}

/** Pending commands whose deadline passed long ago and that no waiter withdrew (its worker died). */
export function expireOverdueCommands(db: Db, graceMs: number) {
  return db
    .updateTable('agent_commands')
    .set({
      status: 'expired',
      error_code: 'node_unreachable',
      error_message: 'the node did not connect before the command deadline; the command was withdrawn',
      finished_at: sql`now()`,
    })
    .where('status', '=', 'pending')
    .where('deadline_at', '<', sql<Date>`now() - make_interval(secs => ${graceMs / 1000})`)
    .returning('id')
    .execute();
}

export function requestCommandCancel(db: Db, id: string) {
  return db
    .updateTable('agent_commands')
    .set({ cancel_requested_at: sql`coalesce(cancel_requested_at, now())` })
    .where('id', '=', id)
    .where('status', 'in', ['delivered', 'running'])
    .returning(['id', 'node_id'])
    .executeTakeFirst();
}

/**
 * Marks the node's pending commands delivered and returns them, oldest first: the caller sends
 * them right after. Claiming before sending is what lets a deadline withdraw a command atomically.
 */
export async function claimPendingCommands(db: Db, nodeId: string) {
  const rows = await db
    .updateTable('agent_commands')
    .set({ status: 'delivered', delivered_at: sql`now()` })
    .where('node_id', '=', nodeId)
    .where('status', '=', 'pending')
    .where('deadline_at', '>', sql<Date>`now()`)
    .returningAll()
    .execute();
  return rows.sort((a, b) => Number(BigInt(a.seq) - BigInt(b.seq)));
}

/** Commands handed to the node earlier (possibly on another stream) that have no result yet. */
export function unfinishedDeliveredCommands(db: Db, nodeId: string) {
  return db
    .selectFrom('agent_commands')
    .selectAll()
    .where('node_id', '=', nodeId)
    .where('status', 'in', ['delivered', 'running'])
    .orderBy('seq')
    .execute();
}

/** Commands of the node a job asked to stop, still without a result. */
export function commandsToCancel(db: Db, nodeId: string) {
  return db
    .selectFrom('agent_commands')
    .select('id')
    .where('node_id', '=', nodeId)
    .where('status', 'in', ['delivered', 'running'])
    .where('cancel_requested_at', 'is not', null)
    .execute();
}

/** Nodes that have a command waiting to be delivered or cancelled (the polling floor). */
export async function nodesWithWork(db: Db): Promise<string[]> {
  const rows = await db
    .selectFrom('agent_commands')
    .select('node_id')
    .distinct()
    .where((eb) =>
      eb.or([
        eb.and([eb('status', '=', 'pending'), eb('deadline_at', '>', sql<Date>`now()`)]),
        eb.and([eb('status', 'in', ['delivered', 'running']), eb('cancel_requested_at', 'is not', null)]),
      ]),
    )
    .execute();
  return rows.map((row) => row.node_id);
}

/** The agent journaled these commands: they are running (or about to) on the node. */
export function markCommandsRunning(db: Db, nodeId: string, ids: string[]) {
  if (ids.length === 0) return Promise.resolve([]);
  return db
    .updateTable('agent_commands')
    .set({ status: 'running', acknowledged_at: sql`coalesce(acknowledged_at, now())` })
    .where('node_id', '=', nodeId)
    .where('id', 'in', ids)
    .where('status', '=', 'delivered')
    .returning('id')
    .execute();
}

export function saveCommandProgress(db: Db, nodeId: string, id: string, progress: CommandProgress) {
  return db
    .updateTable('agent_commands')
    .set({ progress: JSON.stringify(progress) })
    .where('node_id', '=', nodeId)
    .where('id', '=', id)
    .where('status', 'in', ['delivered', 'running'])
    .returning(['id', 'job_id'])
    .executeTakeFirst();
}

export interface ResultToRecord {
  status: Extract<CommandStatus, 'succeeded' | 'failed' | 'interrupted' | 'cancelled'>;
  output: unknown;
  errorCode: string | null;
  errorMessage: string | null;
}

/** Records a result once; `undefined` when the command already had one or is not this node's. */
export function recordCommandResult(db: Db, nodeId: string, id: string, result: ResultToRecord) {
  return db
    .updateTable('agent_commands')
    .set({
      status: result.status,
      output: result.output === undefined ? null : JSON.stringify(result.output),
      error_code: result.errorCode,
      error_message: result.errorMessage,
      finished_at: sql`now()`,
      acknowledged_at: sql`coalesce(acknowledged_at, now())`,
    })
    .where('id', '=', id)
    .where('node_id', '=', nodeId)
    .where('status', 'in', ['pending', 'delivered', 'running'])
    .returning(['id', 'job_id'])
    .executeTakeFirst();
}

export function commandOwner(db: Db, id: string) {
  return db
    .selectFrom('agent_commands')
    .select(['node_id', 'job_id', 'status'])
    .where('id', '=', id)
    .executeTakeFirst();
}
