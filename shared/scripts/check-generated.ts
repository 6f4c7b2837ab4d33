/**
 * Fails (exit code 1) when the committed src/agent-protocol/generated/ differs from what
 * proto/ generates now: a .proto was changed without `npm run generate`, or a generated file was
 * edited by hand. Usage: `npm run check:generated` in shared/ (CI runs it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatedDir, generateToTemp, listFiles } from './proto-codegen.ts';

const generation = generateToTemp();
const freshDir = generation.dir;
try {
  const fresh = listFiles(freshDir);
  const committed = listFiles(generatedDir);
  const problems: string[] = [];
  for (const file of fresh) {
    if (!committed.includes(file)) problems.push(`missing: ${file}`);
    else if (readFileSync(join(freshDir, file), 'utf8') !== readFileSync(join(generatedDir, file), 'utf8')) {
      problems.push(`stale:   ${file}`);
    }
  }
  for (const file of committed) if (!fresh.includes(file)) problems.push(`extra:   ${file}`);

  if (problems.length > 0) {
    console.error('src/agent-protocol/generated/ does not match proto/:');
    for (const problem of problems) console.error(`  ${problem}`);
    console.error('Run `npm run generate --workspace @wpcp/shared` and commit the result.');
    process.exitCode = 1;
  } else {
    console.log(`src/agent-protocol/generated/ is up to date (${fresh.length} file(s)).`);
  }
} finally {
  generation.cleanup();
}
