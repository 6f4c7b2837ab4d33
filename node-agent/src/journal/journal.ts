// The on-disk command journal: the agent's guarantee that a command is executed at most once per id.
//
// One JSON file per command id in `<stateDir>/journal` (directory 0700, files 0600). A command moves
// through three states, and every transition rewrites its file durably (temp file, fsync, rename,
// fsync of the directory) before the call resolves:
//
//   started       written BEFORE the command runs; a redelivery of the id is then never re-run
//   result        the outcome, kept until the control plane confirms it persisted it
//   acknowledged  a small tombstone (status and times, no output) so a late redelivery is still
//                 recognised; pruned after `tombstoneRetentionDays`
//
// After a crash, `recoverAfterCrash()` turns every "started" command that has no result into an
// `interrupted` result: it is reported, never re-run.
//
// The journal assumes it is the only writer of its directory (one agent per node).
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';

export const JOURNAL_DIR_NAME = 'journal';
export const DEFAULT_TOMBSTONE_RETENTION_DAYS = 7;
const DAY_MS = 24 * 60 * 60 * 1000;
const FILE_SUFFIX = '.json';
const TEMP_SUFFIX = '.tmp';

/** Command ids become file names: this pattern (which covers UUIDs) makes traversal impossible. */
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9:_-]{1,200}$/;

export const RESULT_STATUSES = ['succeeded', 'failed', 'interrupted', 'cancelled', 'rejected'] as const;
export type ResultStatus = (typeof RESULT_STATUSES)[number];

export interface CommandResult {
  commandId: string;
  status: ResultStatus;
  errorCode?: string;
  errorMessage?: string;
  /** Must be JSON-serialisable. Dropped from the tombstone once acknowledged. */
  output?: unknown;
  /** ISO 8601 timestamp (UTC). */
  finishedAt: string;
}

/** What the agent wants to remember about a started command (type, deadline...). JSON only; no secrets. */
export type CommandMeta = Readonly<Record<string, unknown>>;

export type JournalEntry =
  | { state: 'none' }
  | { state: 'started'; commandId: string; startedAt: string; meta: CommandMeta }
  | { state: 'result'; commandId: string; startedAt: string; meta: CommandMeta; result: CommandResult }
  | {
      state: 'acknowledged';
      commandId: string;
      startedAt: string;
      status: ResultStatus;
      finishedAt: string;
      acknowledgedAt: string;
    };

type StoredEntry = Exclude<JournalEntry, { state: 'none' }>;

export type JournalErrorCode =
  | 'invalid_command_id'
  | 'invalid_argument'
  | 'already_journaled'
  | 'not_started'
  | 'result_exists'
  | 'unknown_command'
  | 'no_result';

export class JournalError extends Error {
  readonly code: JournalErrorCode;

  constructor(code: JournalErrorCode, message: string) {
    super(message);
    this.name = 'JournalError';
    this.code = code;
  }
}

export interface JournalOptions {
  tombstoneRetentionDays?: number;
  /** Clock, injectable for tests. */
  now?: () => Date;
}

const timestamp = z.iso.datetime();
const commandId = z.string().regex(COMMAND_ID_PATTERN);
const metaSchema = z.record(z.string(), z.unknown());

const resultSchema = z.strictObject({
  commandId,
  status: z.enum(RESULT_STATUSES),
  errorCode: z.string().optional(),
  errorMessage: z.string().optional(),
  output: z.unknown().optional(),
  finishedAt: timestamp,
});

const storedSchema = z.discriminatedUnion('state', [
  z.strictObject({
    v: z.literal(1),
    state: z.literal('started'),
    commandId,
    startedAt: timestamp,
    meta: metaSchema,
  }),
  z.strictObject({
    v: z.literal(1),
    state: z.literal('result'),
    commandId,
    startedAt: timestamp,
    meta: metaSchema,
    result: resultSchema,
  }),
  z.strictObject({
    v: z.literal(1),
    state: z.literal('acknowledged'),
    commandId,
    startedAt: timestamp,
    status: z.enum(RESULT_STATUSES),
    finishedAt: timestamp,
    acknowledgedAt: timestamp,
  }),
]);

export function isValidCommandId(id: unknown): id is string {
  return typeof id === 'string' && COMMAND_ID_PATTERN.test(id);
}

function assertCommandId(id: unknown): asserts id is string {
  if (!isValidCommandId(id)) {
    const shown = typeof id === 'string' ? JSON.stringify(id.slice(0, 80)) : typeof id;
    throw new JournalError('invalid_command_id', `invalid command id ${shown}`);
  }
}

/** A JSON round trip: what is kept in memory is exactly what a restart will read back. */
function toJson<T>(value: T, what: string): T {
  try {
    return JSON.parse(JSON.stringify(value)) as T;
  } catch (err) {
    throw new JournalError('invalid_argument', `${what} is not JSON-serialisable: ${String(err)}`);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replace `dir/name` atomically and durably with `data`. */
async function writeFileDurably(dir: string, name: string, data: string): Promise<void> {
  const target = path.join(dir, name);
  const temp = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(data, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
  await fsyncDir(dir);
}

export class Journal {
  readonly dir: string;
  readonly #retentionMs: number;
  readonly #now: () => Date;
  readonly #entries: Map<string, StoredEntry>;
  /** Ids started through this instance: running now, so never "interrupted" by recovery. */
  readonly #startedHere = new Set<string>();
  readonly #locks = new Map<string, Promise<void>>();

  private constructor(dir: string, entries: Map<string, StoredEntry>, options: JournalOptions) {
    this.dir = dir;
    this.#entries = entries;
    this.#retentionMs = (options.tombstoneRetentionDays ?? DEFAULT_TOMBSTONE_RETENTION_DAYS) * DAY_MS;
    this.#now = options.now ?? (() => new Date());
  }

  /** Open (creating if needed) the journal under `stateDir` and load every entry. */
  static async open(stateDir: string, options: JournalOptions = {}): Promise<Journal> {
    if (!path.isAbsolute(stateDir)) throw new JournalError('invalid_argument', 'stateDir must be absolute');
    const days = options.tombstoneRetentionDays;
    if (days !== undefined && !(Number.isFinite(days) && days >= 0)) {
      throw new JournalError('invalid_argument', 'tombstoneRetentionDays must be a non-negative number');
    }
    const dir = path.join(stateDir, JOURNAL_DIR_NAME);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is filtered by the umask and ignored for an existing directory: enforce it.
    await chmod(dir, 0o700);
    const entries = new Map<string, StoredEntry>();
    for (const name of await readdir(dir)) {
      if (name.startsWith('.') && name.endsWith(TEMP_SUFFIX)) {
        // A write interrupted before its rename: the previous version of the file is still intact.
        await unlink(path.join(dir, name)).catch(() => {});
        continue;
      }
      if (!name.endsWith(FILE_SUFFIX)) continue;
      const id = name.slice(0, -FILE_SUFFIX.length);
      if (!isValidCommandId(id)) continue;
      entries.set(id, await loadEntry(dir, name, id));
    }
    return new Journal(dir, entries, options);
  }

  /** Record, durably, that a command is about to run. Refuses an id the journal already knows. */
  async recordStarted(id: string, meta: CommandMeta): Promise<void> {
    assertCommandId(id);
    const parsedMeta = metaSchema.safeParse(meta);
    if (!parsedMeta.success) throw new JournalError('invalid_argument', 'meta must be a plain object');
    await this.#withLock(id, async () => {
      const existing = this.#entries.get(id);
      if (existing) {
        throw new JournalError('already_journaled', `command ${id} is already journaled (${existing.state})`);
      }
      const entry: StoredEntry = {
        state: 'started',
        commandId: id,
        startedAt: this.#now().toISOString(),
        meta: toJson(parsedMeta.data, 'meta'),
      };
      await this.#write(entry);
      this.#startedHere.add(id);
    });
  }

  /** Record the outcome of a started command. */
  async recordResult(id: string, result: CommandResult): Promise<void> {
    assertCommandId(id);
    const parsed = resultSchema.safeParse(result);
    if (!parsed.success) {
      throw new JournalError('invalid_argument', `invalid result: ${z.prettifyError(parsed.error)}`);
    }
    if (parsed.data.commandId !== id) {
      throw new JournalError('invalid_argument', `result is for ${parsed.data.commandId}, not ${id}`);
    }
    await this.#withLock(id, async () => {
      const existing = this.#entries.get(id);
      if (!existing) throw new JournalError('not_started', `command ${id} was never started`);
      if (existing.state !== 'started') {
        throw new JournalError('result_exists', `command ${id} already has a result`);
      }
      await this.#write({ ...existing, state: 'result', result: toJson(parsed.data, 'result') });
    });
  }

  /** The control plane persisted the result: keep only a tombstone. Idempotent. */
  async markAcknowledged(id: string): Promise<void> {
    assertCommandId(id);
    await this.#withLock(id, async () => {
      const existing = this.#entries.get(id);
      if (!existing) throw new JournalError('unknown_command', `command ${id} is not in the journal`);
      if (existing.state === 'acknowledged') return;
      if (existing.state === 'started') {
        throw new JournalError('no_result', `command ${id} has no result yet`);
      }
      await this.#write({
        state: 'acknowledged',
        commandId: id,
        startedAt: existing.startedAt,
        status: existing.result.status,
        finishedAt: existing.result.finishedAt,
        acknowledgedAt: this.#now().toISOString(),
      });
    });
  }

  lookup(id: string): JournalEntry {
    assertCommandId(id);
    const entry = this.#entries.get(id);
    return entry ? structuredClone(entry) : { state: 'none' };
  }

  /** Results the control plane has not confirmed yet, oldest first: re-sent after (re)connecting. */
  unacknowledgedResults(): CommandResult[] {
    const results: CommandResult[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.state === 'result') results.push(structuredClone(entry.result));
    }
    return results.sort(
      (a, b) => a.finishedAt.localeCompare(b.finishedAt) || a.commandId.localeCompare(b.commandId),
    );
  }

  /**
   * Give every command that a previous agent process started but never finished an `interrupted`
   * result. Commands started through this instance are running now and are left alone.
   */
  async recoverAfterCrash(): Promise<CommandResult[]> {
    const recovered: CommandResult[] = [];
    for (const [id, entry] of [...this.#entries]) {
      if (entry.state !== 'started' || this.#startedHere.has(id)) continue;
      const result: CommandResult = {
        commandId: id,
        status: 'interrupted',
        errorCode: 'agent_interrupted',
        errorMessage: 'the agent stopped while this command was running; it was not run again',
        finishedAt: this.#now().toISOString(),
      };
      try {
        await this.recordResult(id, result);
        recovered.push(result);
      } catch (err) {
        // Raced with a concurrent recordResult for the same id: that result stands.
        if (!(err instanceof JournalError && err.code === 'result_exists')) throw err;
      }
    }
    return recovered;
  }

  /** Delete tombstones acknowledged more than the retention period ago. Returns how many went. */
  async pruneTombstones(): Promise<number> {
    const cutoff = this.#now().getTime() - this.#retentionMs;
    let removed = 0;
    for (const [id, entry] of [...this.#entries]) {
      if (entry.state !== 'acknowledged' || Date.parse(entry.acknowledgedAt) >= cutoff) continue;
      await this.#withLock(id, async () => {
        if (this.#entries.get(id) !== entry) return;
        await unlink(this.#path(id)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        this.#entries.delete(id);
        removed += 1;
      });
    }
    if (removed > 0) await fsyncDir(this.dir);
    return removed;
  }

  #path(id: string): string {
    return path.join(this.dir, `${id}${FILE_SUFFIX}`);
  }

  async #write(entry: StoredEntry): Promise<void> {
    // Disk first: the in-memory view only changes once the new state is durable.
    await writeFileDurably(
      this.dir,
      `${entry.commandId}${FILE_SUFFIX}`,
      `${JSON.stringify({ v: 1, ...entry })}\n`,
    );
    this.#entries.set(entry.commandId, entry);
  }

  /** Serialise operations on one id; different ids proceed in parallel. */
  async #withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.#locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    }
  }
}

/**
 * Load one journal file. A file that cannot be parsed (a disk fault: writes are atomic) is treated as
 * a started command without result: recovery then reports it as interrupted instead of ever re-running it.
 */
async function loadEntry(dir: string, name: string, id: string): Promise<StoredEntry> {
  const file = path.join(dir, name);
  const text = await readFile(file, 'utf8');
  let parsed: ReturnType<typeof storedSchema.safeParse> | undefined;
  try {
    parsed = storedSchema.safeParse(JSON.parse(text));
  } catch {
    parsed = undefined;
  }
  if (parsed?.success && parsed.data.commandId === id) {
    const { v: _version, ...entry } = parsed.data;
    if (entry.state !== 'result' || entry.result.commandId === id) return entry;
  }
  const { mtime } = await stat(file);
  return {
    state: 'started',
    commandId: id,
    startedAt: mtime.toISOString(),
    meta: { unreadableJournalFile: true },
  };
}
