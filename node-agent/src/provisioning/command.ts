// Runs one program for a provisioning step through the agent's sandbox (runProcess: argv only, no
// shell, minimal environment, time and output limits) and turns a failure into a ProvisioningError
// that names the program and quotes its output.
import { type RunResult, runProcess } from '../exec/run.ts';
import { ProvisioningError } from './errors.ts';

export interface Command {
  /** Absolute path or bare name of the program. */
  file: string;
  args: readonly string[];
}

export interface RunCommandOptions {
  stdin?: string;
  timeoutMs?: number;
  maxOutputBytes?: number;
  uid?: number;
  gid?: number;
  env?: Readonly<Record<string, string>>;
  signal?: AbortSignal;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/** Runs the command; resolves with its result whatever the exit code. */
export function runCommand(command: Command, options: RunCommandOptions = {}): Promise<RunResult> {
  return runProcess({
    file: command.file,
    args: command.args,
    stdin: options.stdin,
    timeoutMs: options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    maxOutputBytes: options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
    uid: options.uid,
    gid: options.gid,
    env: options.env,
    signal: options.signal,
  });
}

/** Runs the command and throws `command_failed` unless it exits 0. */
export async function runChecked(command: Command, options: RunCommandOptions = {}): Promise<RunResult> {
  const result = await runCommand(command, options);
  if (result.exitCode !== 0) throw commandFailed(command, result);
  return result;
}

export function describeFailure(result: RunResult): string {
  if (result.timedOut) return `timed out after ${result.durationMs} ms`;
  if (result.cancelled) return 'was cancelled';
  if (result.signal) return `was killed by ${result.signal}`;
  return `exited with code ${result.exitCode}`;
}

export function commandFailed(command: Command, result: RunResult): ProvisioningError {
  const output = (result.stderr.trim() || result.stdout.trim()).slice(0, 4_000);
  return new ProvisioningError(
    'command_failed',
    `${command.file} ${describeFailure(result)}${output ? `: ${output}` : ''}`,
  );
}
