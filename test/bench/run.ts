/**
 * `npm run bench`: prints the figures later work is compared against. Not part of `npm test`.
 * Usage: npm run bench [-- api] [-- --requests N]
 */
import { parseArgs } from 'node:util';
import { benchApiLatency } from './api-latency.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { requests: { type: 'string', default: '1000' } },
});
const which = new Set(positionals.length ? positionals : ['api']);

if (which.has('api')) {
  const results = await benchApiLatency({ requests: Number(values.requests) });
  console.log('\nAPI latency (milliseconds; per_second = completed operations per second)');
  console.table(results);
}
process.exit(0);
