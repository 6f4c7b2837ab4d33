/**
 * The streams this replica holds, one per node. A node that reconnects gets a new session id; the
 * newest session wins and the older one is closed, and removing a session that is no longer the
 * node's current one changes nothing (a stale disconnect never touches its successor).
 */
export interface RegisteredStream {
  readonly nodeId: string;
  readonly sessionId: string;
  close(code: number, reason: string): void;
}

export class StreamRegistry<Stream extends RegisteredStream = RegisteredStream> {
  readonly #streams = new Map<string, Stream>();

  /** Makes `stream` the node's current one; returns the one it replaced, already closed. */
  register(stream: Stream, supersededCode: number): Stream | undefined {
    const previous = this.#streams.get(stream.nodeId);
    this.#streams.set(stream.nodeId, stream);
    if (previous && previous !== stream) {
      previous.close(supersededCode, 'replaced by a newer connection from the same node');
      return previous;
    }
    return undefined;
  }

  /** Forgets `stream` if it is still its node's current one; returns whether it was. */
  unregister(stream: Stream): boolean {
    if (this.#streams.get(stream.nodeId) !== stream) return false;
    this.#streams.delete(stream.nodeId);
    return true;
  }

  get(nodeId: string): Stream | undefined {
    return this.#streams.get(nodeId);
  }

  isCurrent(stream: Stream): boolean {
    return this.#streams.get(stream.nodeId) === stream;
  }

  nodeIds(): string[] {
    return [...this.#streams.keys()];
  }

  get size(): number {
    return this.#streams.size;
  }

  closeAll(code: number, reason: string): void {
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    for (const stream of streams) stream.close(code, reason);
  }
}
