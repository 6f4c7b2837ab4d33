import { describe, expect, it } from 'vitest';
import { Backoff, backoffCeiling, backoffDelay } from './backoff.ts';

const options = { initialMs: 1000, maxMs: 30_000 };

describe('backoffCeiling', () => {
  it('doubles per attempt and stops at the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50].map((a) => backoffCeiling(a, options))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  it('stays at the cap for attempts large enough to overflow the exponent', () => {
    expect(backoffCeiling(5000, options)).toBe(30_000);
    expect(backoffCeiling(5000, { ...options, multiplier: 3 })).toBe(30_000);
  });

  it('honours a custom multiplier', () => {
    expect(backoffCeiling(2, { ...options, multiplier: 3 })).toBe(9000);
  });

  it('refuses invalid input', () => {
    expect(() => backoffCeiling(-1, options)).toThrow(RangeError);
    expect(() => backoffCeiling(1.5, options)).toThrow(RangeError);
    expect(() => backoffCeiling(0, { initialMs: 5000, maxMs: 1000 })).toThrow(RangeError);
    expect(() => backoffCeiling(0, { ...options, multiplier: 0.5 })).toThrow(RangeError);
    expect(() => backoffCeiling(0, { initialMs: Number.NaN, maxMs: 1000 })).toThrow(RangeError);
  });
});

describe('backoffDelay (full jitter)', () => {
  it('spans [0, ceiling) with the extremes of the random source', () => {
    expect(backoffDelay(3, { ...options, random: () => 0 })).toBe(0);
    expect(backoffDelay(3, { ...options, random: () => 0.5 })).toBe(4000);
    expect(backoffDelay(3, { ...options, random: () => 0.999_999 })).toBe(7999);
  });

  it('never exceeds the cap, even with a random source returning 1 or garbage', () => {
    for (const r of [1, 1.5, Number.POSITIVE_INFINITY, Number.NaN, -3]) {
      const delay = backoffDelay(100, { ...options, random: () => r });
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(30_000);
    }
  });

  it('stays within bounds with the real random source and actually varies', () => {
    const delays = Array.from({ length: 500 }, () => backoffDelay(2, options));
    for (const delay of delays) {
      expect(Number.isInteger(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(4000);
    }
    expect(new Set(delays).size).toBeGreaterThan(100);
    // Full jitter: both halves of the range are used.
    expect(delays.some((d) => d < 2000)).toBe(true);
    expect(delays.some((d) => d >= 2000)).toBe(true);
  });
});

describe('Backoff', () => {
  it('grows the delay bound with each failure and starts over after reset', () => {
    const backoff = new Backoff({ ...options, random: () => 0.5 });
    expect([1, 2, 3, 4, 5, 6, 7].map(() => backoff.next())).toEqual([
      500, 1000, 2000, 4000, 8000, 15_000, 15_000,
    ]);
    expect(backoff.attempt).toBe(7);
    backoff.reset();
    expect(backoff.attempt).toBe(0);
    expect(backoff.next()).toBe(500);
  });

  it('validates its options up front', () => {
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(RangeError);
  });
});
