// Capped exponential backoff with full jitter (the delay is uniform in [0, bound), where the bound
// doubles per failed attempt up to a cap). Full jitter spreads the reconnects of thousands of agents
// after a control-plane restart, which keeps the TLS handshake storm manageable.

export interface BackoffOptions {
  /** Bound of the first delay (attempt 0), in ms. */
  initialMs: number;
  /** Cap of the bound, in ms. */
  maxMs: number;
  /** Growth of the bound per attempt; default 2. */
  multiplier?: number;
  /** Uniform random number in [0, 1); injectable for tests. Default Math.random. */
  random?: () => number;
}

function validate(options: BackoffOptions): void {
  const { initialMs, maxMs, multiplier = 2 } = options;
  if (!Number.isFinite(initialMs) || initialMs < 0)
    throw new RangeError('initialMs must be a finite number >= 0');
  if (!Number.isFinite(maxMs) || maxMs < initialMs)
    throw new RangeError('maxMs must be a finite number >= initialMs');
  if (!Number.isFinite(multiplier) || multiplier < 1)
    throw new RangeError('multiplier must be a finite number >= 1');
}

/** The upper bound of the delay before retry number `attempt` (0-based): min(maxMs, initialMs * multiplier^attempt). */
export function backoffCeiling(attempt: number, options: BackoffOptions): number {
  if (!Number.isInteger(attempt) || attempt < 0)
    throw new RangeError('attempt must be a non-negative integer');
  validate(options);
  const { initialMs, maxMs, multiplier = 2 } = options;
  // multiplier ** attempt overflows to Infinity for large attempts; Math.min then yields the cap.
  if (initialMs === 0) return 0;
  return Math.min(maxMs, initialMs * multiplier ** attempt);
}

/** Full-jitter delay in whole ms for retry number `attempt`: uniform in [0, ceiling). */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const ceiling = backoffCeiling(attempt, options);
  const r = (options.random ?? Math.random)();
  // Clamp a misbehaving random source into [0, 1) so the cap can never be exceeded.
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1 - Number.EPSILON) : 0;
  return Math.floor(unit * ceiling);
}

/** Stateful helper for a reconnect loop: `next()` after each failure, `reset()` after a success. */
export class Backoff {
  readonly #options: BackoffOptions;
  #attempt = 0;

  constructor(options: BackoffOptions) {
    validate(options);
    this.#options = { ...options };
  }

  /** Failed attempts since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay to wait before the next attempt; advances the attempt counter. */
  next(): number {
    const delay = backoffDelay(this.#attempt, this.#options);
    this.#attempt += 1;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
