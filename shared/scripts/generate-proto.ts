/**
 * Regenerates src/agent-protocol/generated/ from proto/ (replacing it entirely, so code of a
 * removed .proto file disappears too). Usage: `npm run generate` in shared/.
 */
import { cpSync, rmSync } from 'node:fs';
import { generatedDir, generateToTemp, listFiles } from './proto-codegen.ts';

const fresh = generateToTemp();
try {
  rmSync(generatedDir, { recursive: true, force: true });
  cpSync(fresh.dir, generatedDir, { recursive: true });
  for (const file of listFiles(generatedDir)) console.log(`generated ${file}`);
} finally {
  fresh.cleanup();
}
