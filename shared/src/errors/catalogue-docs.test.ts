import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCatalogue } from './catalogue.ts';

const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

/** The row docs/errors.md must have for a code. */
export function docsRow(code: string, definition: { status: number; meaning: string }): string {
  return `| \`${code}\` | ${definition.status} | ${definition.meaning} |`;
}

describe('docs/errors.md', () => {
  it('lists every catalogued code with its status and meaning, and nothing else', () => {
    const expected = Object.entries(errorCatalogue).map(([code, definition]) => docsRow(code, definition));
    // Compare with runs of spaces folded, so a formatter may pad the table's columns.
    const documented = docs
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => line.replace(/ {2,}/g, ' '));
    expect(documented, `regenerate the table in docs/errors.md:\n${expected.join('\n')}`).toEqual(expected);
  });

  it('gives every code a client error or server error status', () => {
    for (const [code, definition] of Object.entries(errorCatalogue)) {
      expect(definition.status, code).toBeGreaterThanOrEqual(400);
      expect(definition.status, code).toBeLessThan(600);
      expect(definition.meaning.length, code).toBeGreaterThan(10);
    }
  });
});
