import { describe, expect, it } from 'vitest';
import { CommandScheduler, QueuedCommandRemovedError } from './concurrency.ts';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Let every pending promise callback run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await new Promise((resolve) => setImmediate(resolve));
}

/** A scheduler plus bookkeeping: which commands started, in which order, and a handle to finish each. */
function harness(maxConcurrent: number) {
  const scheduler = new CommandScheduler({ maxConcurrent });
  const started: string[] = [];
  const gates = new Map<string, Deferred<string>>();
  let running = 0;
  let maxRunning = 0;
  const submit = (id: string, environmentKey?: string) => {
    const gate = deferred<string>();
    const done = scheduler.submit({
      id,
      environmentKey,
      run: async () => {
        started.push(id);
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        try {
          return await gate.promise;
        } finally {
          running -= 1;
        }
      },
    });
    gates.set(id, gate); // only once submit() accepted the command
    done.catch(() => {}); // outcomes are asserted explicitly where they matter
    return done;
  };
  const finish = async (id: string) => {
    gates.get(id)?.resolve(`${id}:done`);
    await settle();
  };
  return { scheduler, started, submit, finish, maxRunning: () => maxRunning };
}

describe('CommandScheduler', () => {
  it('runs at most maxConcurrent commands at once', async () => {
    const h = harness(2);
    const results = ['a', 'b', 'c', 'd', 'e'].map((id) => h.submit(id));
    await settle();
    expect(h.started).toEqual(['a', 'b']);
    expect(h.scheduler.runningCount).toBe(2);
    expect(h.scheduler.queuedCount).toBe(3);

    await h.finish('b');
    expect(h.started).toEqual(['a', 'b', 'c']);
    await h.finish('a');
    await h.finish('c');
    await h.finish('d');
    await h.finish('e');
    expect(h.started).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(h.maxRunning()).toBe(2);
    expect(await Promise.all(results)).toEqual(['a:done', 'b:done', 'c:done', 'd:done', 'e:done']);
    expect(h.scheduler.runningCount).toBe(0);
  });

  it('runs one command per environment at a time, in arrival order', async () => {
    const h = harness(10);
    h.submit('env1-first', 'env-1');
    h.submit('env1-second', 'env-1');
    h.submit('env2-first', 'env-2');
    h.submit('env1-third', 'env-1');
    await settle();
    expect(h.started).toEqual(['env1-first', 'env2-first']);

    await h.finish('env2-first');
    expect(h.started).toEqual(['env1-first', 'env2-first']);
    await h.finish('env1-first');
    expect(h.started).toEqual(['env1-first', 'env2-first', 'env1-second']);
    expect(h.scheduler.state('env1-third')).toBe('queued');
    await h.finish('env1-second');
    expect(h.started.at(-1)).toBe('env1-third');
  });

  it('does not hold commands without a key (or other keys) behind a busy environment', async () => {
    const h = harness(3);
    h.submit('a1', 'env-a');
    h.submit('a2', 'env-a');
    h.submit('free-1');
    h.submit('b1', 'env-b');
    h.submit('free-2');
    await settle();
    expect(h.started).toEqual(['a1', 'free-1', 'b1']);
    expect(h.scheduler.queuedCount).toBe(2);
    // The freed global slot goes to the oldest admissible command: a2 still waits for a1.
    await h.finish('free-1');
    expect(h.started).toEqual(['a1', 'free-1', 'b1', 'free-2']);
    await h.finish('a1');
    expect(h.started).toEqual(['a1', 'free-1', 'b1', 'free-2', 'a2']);
    expect(h.maxRunning()).toBe(3);
  });

  it('treats an empty environment key as no key', async () => {
    const h = harness(5);
    h.submit('x', '');
    h.submit('y', '');
    await settle();
    expect(h.started).toEqual(['x', 'y']);
  });

  it('removes a queued command before it starts, and never runs it', async () => {
    const h = harness(1);
    h.submit('running', 'env');
    const removed = h.submit('queued', 'env');
    h.submit('after', 'env');
    await settle();

    expect(h.scheduler.state('queued')).toBe('queued');
    expect(h.scheduler.remove('queued')).toBe(true);
    await expect(removed).rejects.toBeInstanceOf(QueuedCommandRemovedError);
    expect(h.scheduler.state('queued')).toBeUndefined();
    expect(h.scheduler.remove('queued')).toBe(false);
    expect(h.scheduler.remove('running')).toBe(false);

    await h.finish('running');
    await h.finish('after');
    expect(h.started).toEqual(['running', 'after']);
  });

  it('frees the slot and the environment when a command fails or throws synchronously', async () => {
    const scheduler = new CommandScheduler({ maxConcurrent: 1 });
    const failing = scheduler.submit({
      id: 'fails',
      environmentKey: 'env',
      run: () => Promise.reject(new Error('boom')),
    });
    const throwing = scheduler.submit({
      id: 'throws',
      environmentKey: 'env',
      run: () => {
        throw new Error('sync boom');
      },
    });
    const ok = scheduler.submit({ id: 'ok', environmentKey: 'env', run: async () => 42 });
    await expect(failing).rejects.toThrow('boom');
    await expect(throwing).rejects.toThrow('sync boom');
    await expect(ok).resolves.toBe(42);
    expect(scheduler.runningCount).toBe(0);
  });

  it('refuses a duplicate id while the first is queued or running, and accepts it afterwards', async () => {
    const h = harness(1);
    h.submit('same');
    h.submit('other');
    await settle();
    expect(() => h.submit('same')).toThrow(/already running/);
    expect(() => h.submit('other')).toThrow(/already queued/);
    await h.finish('same');
    await h.finish('other');
    h.submit('same');
    await settle();
    expect(h.started).toEqual(['same', 'other', 'same']);
  });

  it('applies a new limit: raising it admits waiting commands, lowering it delays the next ones', async () => {
    const h = harness(1);
    for (const id of ['a', 'b', 'c', 'd']) h.submit(id);
    await settle();
    expect(h.started).toEqual(['a']);
    h.scheduler.setMaxConcurrent(3);
    await settle();
    expect(h.started).toEqual(['a', 'b', 'c']);
    h.scheduler.setMaxConcurrent(1);
    await h.finish('a');
    await h.finish('b');
    expect(h.started).toEqual(['a', 'b', 'c']);
    await h.finish('c');
    expect(h.started).toEqual(['a', 'b', 'c', 'd']);
    expect(h.scheduler.maxConcurrent).toBe(1);
    expect(() => h.scheduler.setMaxConcurrent(0)).toThrow(RangeError);
  });

  it('validates maxConcurrent', () => {
    expect(() => new CommandScheduler({ maxConcurrent: 0 })).toThrow(RangeError);
    expect(() => new CommandScheduler({ maxConcurrent: 1.5 })).toThrow(RangeError);
  });
});
