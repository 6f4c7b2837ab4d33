/**
 * Shared by generate-proto.ts and check-generated.ts: runs `buf generate` with shared/buf.gen.yaml
 * (local ts-proto plugin, no network) into a fresh temporary directory and adds the project header.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The shared/ package directory: buf runs here, because buf.gen.yaml paths are relative to it. */
export const sharedDir = fileURLToPath(new URL('..', import.meta.url));
/** Where buf.gen.yaml writes, relative to shared/. */
export const generatedRelativeDir = join('src', 'agent-protocol', 'generated');
/** The committed generated code. */
export const generatedDir = join(sharedDir, generatedRelativeDir);

const header = [
  '// GENERATED FILE - DO NOT EDIT. Source: proto/ at the repository root.',
  '// Regenerate with `npm run generate --workspace @wpcp/shared`;',
  '// `npm run check:generated --workspace @wpcp/shared` fails while this file is stale.',
  '',
].join('\n');

function findBuf(): string {
  const candidates = [
    join(sharedDir, 'node_modules', '.bin', 'buf'),
    join(sharedDir, '..', 'node_modules', '.bin', 'buf'),
  ];
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`buf not found (looked in ${candidates.join(', ')}); run npm install`);
  return found;
}

function assertPluginInstalled(): void {
  // The path buf.gen.yaml names, resolved against shared/ like buf does.
  const plugin = join(sharedDir, '..', 'node_modules', '.bin', 'protoc-gen-ts_proto');
  if (!existsSync(plugin)) throw new Error(`${plugin} not found; run npm install at the repository root`);
}

/** Every file under `dir`, as paths relative to `dir`, sorted. */
export function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

/** Freshly generated code: `dir` is the equivalent of src/agent-protocol/generated/. */
export interface TempGeneration {
  readonly dir: string;
  /** Deletes the temporary directory. */
  cleanup(): void;
}

/** Generates the protocol code into a new temporary directory. */
export function generateToTemp(): TempGeneration {
  assertPluginInstalled();
  const outRoot = mkdtempSync(join(tmpdir(), 'wpcp-proto-'));
  const cleanup = () => rmSync(outRoot, { recursive: true, force: true });
  const result = spawnSync(findBuf(), ['generate', '--template', 'buf.gen.yaml', '--output', outRoot], {
    cwd: sharedDir,
    stdio: 'inherit',
  });
  if (result.error || result.status !== 0) {
    cleanup();
    throw result.error ?? new Error(`buf generate failed with exit code ${result.status}`);
  }
  const outDir = join(outRoot, generatedRelativeDir);
  for (const file of listFiles(outDir)) {
    const path = join(outDir, file);
    writeFileSync(path, header + readFileSync(path, 'utf8'));
  }
  return { dir: outDir, cleanup };
}
