import { Uuid } from '@wpcp/shared/validation';
import { z } from 'zod';
import { runNodeCommand } from '../agent-gateway/commands.ts';
import { defineJob } from '../jobs/job-definition.ts';

export const NODE_PING_JOB = 'node-ping';

/** A node that does not take the ping within this long is reported unreachable. */
const PING_DEADLINE_MS = 60_000;

export const NodePingPayload = z.strictObject({ node_id: Uuid });

/**
 * Checks the whole command path to a node (delivery, the agent's journal and queue, the result)
 * without changing anything there. The output has the node's clock and the round trip.
 */
export const nodePingJob = defineJob({
  type: NODE_PING_JOB,
  payload: NodePingPayload,
  retryLimit: 0,
  expireInSeconds: 5 * 60,
  steps: [
    {
      name: 'ping',
      run: async (ctx) => {
        const started = Date.now();
        const { output } = await runNodeCommand(ctx, {
          nodeId: ctx.payload.node_id,
          step: 'ping',
          payload: { $case: 'ping', value: {} },
          deadlineMs: PING_DEADLINE_MS,
          safeToRetry: true,
        });
        const agentTime = (output as { agent_time_ms?: unknown } | null)?.agent_time_ms;
        ctx.state.agent_time_ms = typeof agentTime === 'number' ? agentTime : null;
        ctx.state.round_trip_ms = Date.now() - started;
      },
    },
  ],
  output: (state) => ({
    agent_time_ms: state.agent_time_ms ?? null,
    round_trip_ms: state.round_trip_ms ?? null,
  }),
});
