import type { ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Request/response over the IPC channel of a forked child (`child_process.fork`): the fleet
 * benchmark drives its control-plane and agent processes with it. Every call has a timeout, and a
 * child that exits fails its pending calls at once.
 */

interface RpcRequest {
  rpc: 'request';
  id: number;
  method: string;
  params: unknown;
}

interface RpcResponse {
  rpc: 'response';
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: a method table maps names to any request shape
export type Methods = Record<string, (params: any) => unknown>;

/** The parent's side: calls methods of one child. */
export class RpcClient<M extends Methods> {
  readonly #child: ChildProcess;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  readonly #name: string;
  #nextId = 1;
  #exited: string | undefined;
  readonly #ready: Promise<void>;

  constructor(child: ChildProcess, name: string) {
    this.#child = child;
    this.#name = name;
    this.#ready = new Promise((resolve, reject) => {
      child.on('message', (message: { rpc?: string }) => {
        if (message?.rpc === 'ready') resolve();
      });
      child.once('exit', () => reject(new Error(`${name} process exited before it was ready`)));
    });
    this.#ready.catch(() => {});
    child.on('message', (message: RpcResponse) => {
      if (message?.rpc !== 'response') return;
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(new Error(`${this.#name}: ${message.error ?? 'failed'}`));
    });
    child.on('exit', (code, signal) => {
      this.#exited = `${this.#name} process exited (code ${code}, signal ${signal})`;
      for (const [id, pending] of this.#pending) {
        clearTimeout(pending.timer);
        pending.reject(new Error(this.#exited));
        this.#pending.delete(id);
      }
    });
  }

  /** Resolves once the child listens for calls (its modules are loaded). */
  ready(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.#name} was not ready within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    return Promise.race([this.#ready, timeout]).finally(() => clearTimeout(timer));
  }

  call<K extends keyof M & string>(
    method: K,
    params: Parameters<M[K]>[0],
    timeoutMs: number,
  ): Promise<Awaited<ReturnType<M[K]>>> {
    if (this.#exited) return Promise.reject(new Error(this.#exited));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.#name}: ${method} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      const request: RpcRequest = { rpc: 'request', id, method, params };
      this.#child.send(request, (error) => {
        if (!error) return;
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(error);
      });
    });
  }
}

const loopDelay = monitorEventLoopDelay({ resolution: 20 });

/** Event-loop delay of this process since the previous call (ms): how late timers and I/O ran. */
export function takeLoopDelay(): { p50: number; p99: number; max: number } {
  const ms = (ns: number) => Math.round(ns / 1e5) / 10;
  const result = {
    p50: ms(loopDelay.percentile(50)),
    p99: ms(loopDelay.percentile(99)),
    max: ms(loopDelay.max),
  };
  loopDelay.reset();
  return result;
}

/** The child's side: answers the parent's calls with `methods`. */
export function serveRpc(methods: Methods): void {
  loopDelay.enable();
  process.on('message', (message: RpcRequest) => {
    if (message?.rpc !== 'request') return;
    const reply = (response: Omit<RpcResponse, 'rpc' | 'id'>) => {
      if (process.connected) process.send?.({ rpc: 'response', id: message.id, ...response });
    };
    const method = methods[message.method];
    if (!method) {
      reply({ ok: false, error: `unknown method ${message.method}` });
      return;
    }
    Promise.resolve()
      .then(() => method(message.params))
      .then(
        (result) => reply({ ok: true, result }),
        (error: unknown) =>
          reply({ ok: false, error: error instanceof Error ? error.message : String(error) }),
      );
  });
  process.send?.({ rpc: 'ready' });
}
