// A CommandContext for calling handlers directly in tests: records log lines and progress, masks
// registered secrets like the executor does, runs processes through the sandbox.

import type { CommandContext, ExecOptions } from '../commands/types.ts';
import { runProcess } from '../exec/run.ts';

export interface TestContext {
  context: CommandContext;
  logs: string[];
  /** Every process the handler started (file and args). */
  processes: Array<{ file: string; args: readonly string[] }>;
  controller: AbortController;
}

export function testContext(options: { allowExec?: boolean; id?: string } = {}): TestContext {
  const logs: string[] = [];
  const processes: TestContext['processes'] = [];
  const secrets: string[] = [];
  const controller = new AbortController();
  const mask = (line: string) =>
    secrets.reduce((text, secret) => text.split(secret).join('[redacted]'), line);
  const context: CommandContext = {
    commandId: options.id ?? 'test-command',
    signal: controller.signal,
    progress: (step, percent, message = '') => logs.push(mask(`[${step} ${percent}%] ${message}`)),
    log: (stream, line) => logs.push(mask(`${stream}: ${line}`)),
    redact: (secret) => {
      if (secret) secrets.push(secret);
    },
    exec: ({ signal, logOutput = true, ...run }: ExecOptions) => {
      processes.push({ file: run.file, args: run.args });
      if (options.allowExec === false)
        throw new Error(`unexpected process: ${run.file} ${run.args.join(' ')}`);
      return runProcess({
        ...run,
        signal: signal ? AbortSignal.any([controller.signal, signal]) : controller.signal,
        ...(logOutput ? { onLine: (stream, line) => context.log(stream, line) } : {}),
      });
    },
  };
  return { context, logs, processes, controller };
}
