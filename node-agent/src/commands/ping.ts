// `ping`: answers at once through the whole command path (journal, queue, result) with a few facts
// about the node. The control plane uses `agent_time_ms` to measure clock skew and round trips.
import os from 'node:os';
import type { Ping } from '@wpcp/shared/agent-protocol';
import { agentVersion } from '../system/stats.ts';
import type { CommandHandler } from './types.ts';

export const runPing: CommandHandler<Ping> = async () => ({
  status: 'succeeded',
  output: {
    agent_time_ms: Date.now(),
    agent_version: agentVersion(),
    hostname: os.hostname(),
    node_version: process.version,
    platform: `${os.platform()}-${os.arch()}`,
    kernel: os.release(),
    uptime_s: Math.round(os.uptime()),
    agent_uptime_s: Math.round(process.uptime()),
  },
});
