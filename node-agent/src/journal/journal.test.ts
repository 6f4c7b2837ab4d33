import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CommandResult, Journal, JournalError } from './journal.ts';

let stateDir: string;

beforeEach(async () => {
  stateDir = await mkdtemp(path.join(tmpdir(), 'wpcp-journal-'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

const ID = '3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';

function result(commandId: string, overrides: Partial<CommandResult> = {}): CommandResult {
  return {
    commandId,
    status: 'succeeded',
    output: { sizeBytes: 42 },
    finishedAt: '2030-01-01T00:00:00.000Z',
    ...overrides,
  };
}

function expectJournalError(code: string) {
  return (err: unknown) => err instanceof JournalError && err.code === code;
}

describe('Journal', () => {
  it('creates a private journal directory with private files', async () => {
    const journal = await Journal.open(stateDir);
    await journal.recordStarted(ID, { type: 'backup' });
    expect((await stat(journal.dir)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(journal.dir, `${ID}.json`))).mode & 0o777).toBe(0o600);
  });

  it('walks a command through started, result and acknowledged', async () => {
    const journal = await Journal.open(stateDir);
    expect(journal.lookup(ID)).toEqual({ state: 'none' });

    await journal.recordStarted(ID, { type: 'backup', environmentId: 'env-1' });
    expect(journal.lookup(ID)).toMatchObject({ state: 'started', meta: { type: 'backup' } });
    expect(journal.unacknowledgedResults()).toEqual([]);

    await journal.recordResult(ID, result(ID));
    expect(journal.lookup(ID)).toMatchObject({ state: 'result', result: result(ID) });
    expect(journal.unacknowledgedResults()).toEqual([result(ID)]);

    await journal.markAcknowledged(ID);
    const entry = journal.lookup(ID);
    expect(entry).toMatchObject({ state: 'acknowledged', status: 'succeeded' });
    expect(entry).not.toHaveProperty('result');
    expect(journal.unacknowledgedResults()).toEqual([]);
    // Idempotent: a repeated acknowledgement changes nothing.
    await journal.markAcknowledged(ID);
    expect(journal.lookup(ID)).toEqual(entry);
  });

  it('keeps every state across a new instance on the same directory', async () => {
    const first = await Journal.open(stateDir);
    await first.recordStarted('cmd:started', { type: 'a' });
    await first.recordStarted('cmd:result', { type: 'b' });
    await first.recordResult('cmd:result', result('cmd:result', { status: 'failed', errorCode: 'x' }));
    await first.recordStarted('cmd:acked', { type: 'c' });
    await first.recordResult('cmd:acked', result('cmd:acked'));
    await first.markAcknowledged('cmd:acked');

    const second = await Journal.open(stateDir);
    for (const id of ['cmd:started', 'cmd:result', 'cmd:acked']) {
      expect(second.lookup(id)).toEqual(first.lookup(id));
    }
    expect(second.lookup('cmd:acked').state).toBe('acknowledged');
    expect(second.unacknowledgedResults()).toEqual([
      result('cmd:result', { status: 'failed', errorCode: 'x' }),
    ]);
  });

  it('refuses to start an id twice, even after a restart or an acknowledgement', async () => {
    const journal = await Journal.open(stateDir);
    await journal.recordStarted(ID, {});
    await expect(journal.recordStarted(ID, {})).rejects.toSatisfy(expectJournalError('already_journaled'));
    await journal.recordResult(ID, result(ID));
    await journal.markAcknowledged(ID);
    const reopened = await Journal.open(stateDir);
    await expect(reopened.recordStarted(ID, {})).rejects.toSatisfy(expectJournalError('already_journaled'));
  });

  it('lets exactly one of two concurrent starts of the same id win', async () => {
    const journal = await Journal.open(stateDir);
    const outcomes = await Promise.allSettled([journal.recordStarted(ID, {}), journal.recordStarted(ID, {})]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1);
  });

  it('answers a redelivered command from the journal after a restart', async () => {
    const journal = await Journal.open(stateDir);
    await journal.recordStarted(ID, { type: 'backup' });
    await journal.recordResult(ID, result(ID));
    const afterRestart = await Journal.open(stateDir);
    const entry = afterRestart.lookup(ID);
    expect(entry.state).toBe('result');
    if (entry.state === 'result') expect(entry.result.output).toEqual({ sizeBytes: 42 });
  });

  it('enforces the order of transitions', async () => {
    const journal = await Journal.open(stateDir);
    await expect(journal.recordResult(ID, result(ID))).rejects.toSatisfy(expectJournalError('not_started'));
    await expect(journal.markAcknowledged(ID)).rejects.toSatisfy(expectJournalError('unknown_command'));
    await journal.recordStarted(ID, {});
    await expect(journal.markAcknowledged(ID)).rejects.toSatisfy(expectJournalError('no_result'));
    await journal.recordResult(ID, result(ID));
    await expect(journal.recordResult(ID, result(ID, { status: 'failed' }))).rejects.toSatisfy(
      expectJournalError('result_exists'),
    );
    expect(journal.lookup(ID)).toMatchObject({ result: { status: 'succeeded' } });
  });

  it('refuses a result for another id or with an invalid shape', async () => {
    const journal = await Journal.open(stateDir);
    await journal.recordStarted(ID, {});
    await expect(journal.recordResult(ID, result('other'))).rejects.toSatisfy(
      expectJournalError('invalid_argument'),
    );
    await expect(
      journal.recordResult(ID, { ...result(ID), status: 'done' as CommandResult['status'] }),
    ).rejects.toSatisfy(expectJournalError('invalid_argument'));
    await expect(journal.recordResult(ID, { ...result(ID), finishedAt: 'yesterday' })).rejects.toSatisfy(
      expectJournalError('invalid_argument'),
    );
    await expect(journal.recordResult(ID, result(ID, { output: { big: 1n } }))).rejects.toSatisfy(
      expectJournalError('invalid_argument'),
    );
    expect(journal.lookup(ID).state).toBe('started');
  });

  it('recovers after a crash: started commands get an interrupted result and are never re-run', async () => {
    const crashed = await Journal.open(stateDir);
    await crashed.recordStarted('running-1', { type: 'a' });
    await crashed.recordStarted('running-2', { type: 'b' });
    await crashed.recordStarted('done', { type: 'c' });
    await crashed.recordResult('done', result('done'));

    const now = new Date('2030-02-02T00:00:00.000Z');
    const restarted = await Journal.open(stateDir, { now: () => now });
    const recovered = await restarted.recoverAfterCrash();
    expect(recovered.map((r) => r.commandId).sort()).toEqual(['running-1', 'running-2']);
    for (const r of recovered) {
      expect(r).toMatchObject({
        status: 'interrupted',
        errorCode: 'agent_interrupted',
        finishedAt: now.toISOString(),
      });
      expect(restarted.lookup(r.commandId)).toMatchObject({ state: 'result', result: r });
    }
    expect(restarted.lookup('done')).toMatchObject({ result: { status: 'succeeded' } });
    expect(restarted.unacknowledgedResults().map((r) => r.commandId)).toEqual([
      'done',
      'running-1',
      'running-2',
    ]);
    await expect(restarted.recordStarted('running-1', {})).rejects.toSatisfy(
      expectJournalError('already_journaled'),
    );
    // A second recovery finds nothing left to do, and the outcome survived on disk.
    expect(await restarted.recoverAfterCrash()).toEqual([]);
    expect((await Journal.open(stateDir)).lookup('running-2')).toMatchObject({
      result: { status: 'interrupted' },
    });
  });

  it('does not interrupt commands started by the running instance', async () => {
    const journal = await Journal.open(stateDir);
    await journal.recordStarted(ID, {});
    expect(await journal.recoverAfterCrash()).toEqual([]);
    expect(journal.lookup(ID).state).toBe('started');
  });

  it('prunes tombstones older than the retention period only', async () => {
    let now = new Date('2030-01-01T00:00:00.000Z');
    const journal = await Journal.open(stateDir, { tombstoneRetentionDays: 3, now: () => now });
    for (const id of ['old', 'young', 'unacked']) {
      await journal.recordStarted(id, {});
      await journal.recordResult(id, result(id));
    }
    await journal.markAcknowledged('old');
    now = new Date('2030-01-03T00:00:00.000Z');
    await journal.markAcknowledged('young');
    now = new Date('2030-01-04T12:00:00.000Z');

    expect(await journal.pruneTombstones()).toBe(1);
    expect(journal.lookup('old')).toEqual({ state: 'none' });
    expect(journal.lookup('young').state).toBe('acknowledged');
    expect(journal.lookup('unacked').state).toBe('result');
    expect((await readdir(journal.dir)).sort()).toEqual(['unacked.json', 'young.json']);
    expect((await Journal.open(stateDir)).lookup('old')).toEqual({ state: 'none' });
  });

  it.each([
    ['empty', ''],
    ['traversal', '../../etc/passwd'],
    ['slash', 'a/b'],
    ['dot-dot', '..'],
    ['dot file', '.hidden'],
    ['NUL byte', 'a\0b'],
    ['space', 'a b'],
    ['too long', 'a'.repeat(201)],
    ['not a string', 42 as unknown as string],
  ])('refuses a bad command id: %s', async (_name, badId) => {
    const journal = await Journal.open(stateDir);
    const invalidId = expectJournalError('invalid_command_id');
    await expect(journal.recordStarted(badId, {})).rejects.toSatisfy(invalidId);
    await expect(journal.recordResult(badId, result(badId))).rejects.toSatisfy(invalidId);
    await expect(journal.markAcknowledged(badId)).rejects.toSatisfy(invalidId);
    expect(() => journal.lookup(badId)).toThrow(JournalError);
    expect(await readdir(journal.dir)).toEqual([]);
  });

  it('accepts the longest allowed id', async () => {
    const journal = await Journal.open(stateDir);
    const longId = `job:${'x'.repeat(196)}`;
    await journal.recordStarted(longId, {});
    expect(journal.lookup(longId).state).toBe('started');
  });

  it('removes leftover temp files and treats an unreadable entry as interrupted, not as new', async () => {
    const first = await Journal.open(stateDir);
    await writeFile(path.join(first.dir, `.${ID}.json.abc123.tmp`), '{"partial');
    await writeFile(path.join(first.dir, 'damaged.json'), '{not json');

    const journal = await Journal.open(stateDir);
    expect(await readdir(journal.dir)).not.toContain(`.${ID}.json.abc123.tmp`);
    expect(journal.lookup(ID)).toEqual({ state: 'none' });
    expect(journal.lookup('damaged')).toMatchObject({
      state: 'started',
      meta: { unreadableJournalFile: true },
    });
    await expect(journal.recordStarted('damaged', {})).rejects.toSatisfy(
      expectJournalError('already_journaled'),
    );
    const [recovered] = await journal.recoverAfterCrash();
    expect(recovered).toMatchObject({ commandId: 'damaged', status: 'interrupted' });
    const onDisk = JSON.parse(await readFile(path.join(journal.dir, 'damaged.json'), 'utf8'));
    expect(onDisk).toMatchObject({ state: 'result', result: { status: 'interrupted' } });
  });

  it('requires an absolute state directory', async () => {
    await expect(Journal.open('relative/dir')).rejects.toSatisfy(expectJournalError('invalid_argument'));
  });
});
