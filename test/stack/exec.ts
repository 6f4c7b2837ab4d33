// Runs a short-lived program to completion and collects its output (test-side helper; the agent's
// own code uses node-agent's runProcess).
import { spawn } from 'node:child_process';

export interface Collected {
  code: number | null;
  stdout: string;
  stderr: string;
  output: string;
}

export interface CollectOptions {
  stdin?: string;
  env?: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}

export function runCollect(
  file: string,
  args: readonly string[],
  options: CollectOptions = {},
): Promise<Collected> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        LANG: 'C.UTF-8',
        ...options.env,
      },
      cwd: options.cwd,
      uid: options.uid,
      gid: options.gid,
      timeout: options.timeoutMs ?? 60_000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, output: stdout + stderr }));
    if (child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(options.stdin);
    }
  });
}
