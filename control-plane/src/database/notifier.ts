import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Db } from './database.ts';

/**
 * The PostgreSQL channels replicas use to wake each other. A notification is only a hint: every
 * listener also polls, so a notification lost while the listening connection was down delays
 * work by one poll interval, never loses it. Payloads are ids, never data.
 */
export const CHANNELS = {
  /** Payload: a node id. The node has a new command, or a command to cancel. */
  agentCommands: 'wpcp_agent_commands',
  /** Payload: a command id. The command reached a final status. */
  commandResults: 'wpcp_command_results',
  /** Payload: a node id. The node was disabled: whoever holds its stream closes it. */
  nodeDisabled: 'wpcp_node_disabled',
} as const;
export type Channel = (typeof CHANNELS)[keyof typeof CHANNELS];

/** Sends a notification; inside a transaction it is delivered when (and only if) it commits. */
export async function notify(db: Db, channel: Channel, payload: string): Promise<void> {
  await sql`select pg_notify(${channel}, ${payload})`.execute(db);
}

/**
 * One dedicated connection that LISTENs on every channel and hands notifications to the
 * subscribers of this process. It reconnects by itself; `onReconnect` handlers run after each
 * reconnection so subscribers can catch up on what they may have missed.
 */
export class Notifier {
  readonly #connectionString: string;
  readonly #logger: Logger;
  readonly #handlers = new Map<string, Set<(payload: string) => void>>();
  readonly #reconnectHandlers = new Set<() => void>();
  #client: pg.Client | undefined;
  #stopped = false;

  constructor(connectionString: string, logger: Logger) {
    this.#connectionString = connectionString;
    this.#logger = logger.child({ component: 'notifier' });
  }

  async start(): Promise<void> {
    await this.#connect();
  }

  on(channel: Channel, handler: (payload: string) => void): () => void {
    let set = this.#handlers.get(channel);
    if (!set) {
      set = new Set();
      this.#handlers.set(channel, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  onReconnect(handler: () => void): () => void {
    this.#reconnectHandlers.add(handler);
    return () => this.#reconnectHandlers.delete(handler);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#connectionString });
    client.on('error', () => {}); // reported by 'end', which reconnects
    client.on('notification', (message) => {
      for (const handler of this.#handlers.get(message.channel) ?? []) {
        try {
          handler(message.payload ?? '');
        } catch (error) {
          this.#logger.error({ err: error, channel: message.channel }, 'notification handler failed');
        }
      }
    });
    try {
      await client.connect();
      for (const channel of Object.values(CHANNELS)) await client.query(`listen ${channel}`);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    client.once('end', () => {
      if (this.#stopped || this.#client !== client) return;
      this.#logger.warn('lost the LISTEN connection; reconnecting');
      void this.#reconnect();
    });
    this.#client = client;
  }

  async #reconnect(): Promise<void> {
    for (let delay = 250; !this.#stopped; delay = Math.min(delay * 2, 5_000)) {
      await sleep(delay);
      if (this.#stopped) return;
      try {
        await this.#connect();
        this.#logger.info('LISTEN connection restored');
        for (const handler of this.#reconnectHandlers) handler();
        return;
      } catch (error) {
        this.#logger.debug({ err: error }, 'LISTEN reconnection failed');
      }
    }
  }
}
