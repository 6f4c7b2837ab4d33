// Admission of commands: at most `maxConcurrent` run at once, and at most one at a time per
// environment (non-empty `environmentKey`), in arrival order per environment. Commands without a key
// are bound by the global limit only, and are not held up behind a busy environment's queue.
// A queued command can be removed (cancelled before it starts).

export interface SchedulerCommand<T> {
  /** Unique among queued and running commands. */
  id: string;
  /** Commands sharing a non-empty key run one at a time, FIFO. */
  environmentKey?: string;
  /** Started when the command is admitted; its outcome settles the promise submit() returned. */
  run: () => Promise<T>;
}

export class QueuedCommandRemovedError extends Error {
  readonly commandId: string;

  constructor(commandId: string) {
    super(`command ${commandId} was removed before it started`);
    this.name = 'QueuedCommandRemovedError';
    this.commandId = commandId;
  }
}

interface Entry {
  id: string;
  key: string | undefined;
  run: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

export type CommandState = 'queued' | 'running';

export class CommandScheduler {
  #maxConcurrent: number;
  /** Waiting commands in arrival order. */
  readonly #queue: Entry[] = [];
  readonly #running = new Map<string, Entry>();
  readonly #busyKeys = new Set<string>();

  constructor(options: { maxConcurrent: number }) {
    if (!Number.isInteger(options.maxConcurrent) || options.maxConcurrent < 1) {
      throw new RangeError('maxConcurrent must be a positive integer');
    }
    this.#maxConcurrent = options.maxConcurrent;
  }

  get maxConcurrent(): number {
    return this.#maxConcurrent;
  }

  /**
   * Change the global limit (the control plane's Welcome may set it). Raising it starts waiting
   * commands at once; lowering it never stops running ones, it only delays the next admissions.
   */
  setMaxConcurrent(maxConcurrent: number): void {
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
      throw new RangeError('maxConcurrent must be a positive integer');
    }
    this.#maxConcurrent = maxConcurrent;
    this.#pump();
  }

  get runningCount(): number {
    return this.#running.size;
  }

  get queuedCount(): number {
    return this.#queue.length;
  }

  state(id: string): CommandState | undefined {
    if (this.#running.has(id)) return 'running';
    return this.#queue.some((entry) => entry.id === id) ? 'queued' : undefined;
  }

  /**
   * Queue a command; it starts as soon as both limits allow (possibly synchronously, within this
   * call). Throws at once if the id is already queued or running.
   */
  submit<T>(command: SchedulerCommand<T>): Promise<T> {
    if (this.state(command.id) !== undefined) {
      throw new Error(`command ${command.id} is already ${this.state(command.id)}`);
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        id: command.id,
        key: command.environmentKey || undefined,
        run: command.run,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.#pump();
    });
  }

  /**
   * Remove a command that has not started yet; its promise rejects with QueuedCommandRemovedError.
   * Returns false when it is not queued (unknown, or already running: cancel that through its run).
   */
  remove(id: string): boolean {
    const index = this.#queue.findIndex((entry) => entry.id === id);
    if (index === -1) return false;
    const [entry] = this.#queue.splice(index, 1);
    entry?.reject(new QueuedCommandRemovedError(id));
    return true;
  }

  #pump(): void {
    let index = 0;
    while (index < this.#queue.length && this.#running.size < this.#maxConcurrent) {
      const entry = this.#queue[index];
      if (entry === undefined) break;
      // Skipping (not stopping at) a busy key keeps FIFO per key: every later entry of that key is
      // skipped too, while commands of other keys, or without one, may pass.
      if (entry.key !== undefined && this.#busyKeys.has(entry.key)) {
        index += 1;
        continue;
      }
      this.#queue.splice(index, 1);
      this.#start(entry);
    }
  }

  #start(entry: Entry): void {
    this.#running.set(entry.id, entry);
    if (entry.key !== undefined) this.#busyKeys.add(entry.key);
    let outcome: Promise<unknown>;
    try {
      outcome = Promise.resolve(entry.run());
    } catch (err) {
      outcome = Promise.reject(err);
    }
    outcome.then(
      (value) => {
        this.#release(entry);
        entry.resolve(value);
      },
      (err: unknown) => {
        this.#release(entry);
        entry.reject(err);
      },
    );
  }

  #release(entry: Entry): void {
    this.#running.delete(entry.id);
    if (entry.key !== undefined) this.#busyKeys.delete(entry.key);
    this.#pump();
  }
}
