#!/usr/bin/env node
// Launcher of the wpcp node agent. The agent is TypeScript run by Node's built-in type stripping:
// - Node >= 22.18 (and 23.6+, 24): type stripping is on by default; src/main.ts is imported here.
// - Node 22.12 to 22.17: it exists behind --experimental-strip-types; this launcher re-executes
//   Node once with that flag (signals are forwarded, the exit status is passed through).
// - Older Node: a clear error.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const STRIP_FLAG = '--experimental-strip-types';
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);

if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`wpcp-agent: Node.js 22.12 or later is required (this is ${process.version})\n`);
  process.exit(1);
}

// process.features.typescript is "strip" or "transform" when type stripping is enabled, false (or
// undefined on the oldest supported releases) when it is not.
if (process.features.typescript) {
  await import('../src/main.ts');
} else if (process.execArgv.includes(STRIP_FLAG)) {
  process.stderr.write(`wpcp-agent: this Node.js (${process.version}) cannot run TypeScript sources\n`);
  process.exit(1);
} else {
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      STRIP_FLAG,
      '--disable-warning=ExperimentalWarning',
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit' },
  );
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code ?? 1);
    }
  });
}
