/**
 * The agent protocol (proto/wpcp/agent/v1/agent.proto) as TypeScript, for the control plane's agent
 * gateway and for the node-agent. Imported as `@wpcp/shared/agent-protocol`.
 *
 * - Message types are interfaces with a same-named value holding `encode`, `decode`, `fromPartial`,
 *   `create`, `fromJSON` and `toJSON` (e.g. `Hello` and `Hello.fromPartial({...})`).
 * - A oneof is `{ $case, value } | undefined`: `switch (msg.message?.$case)` narrows `value`, and
 *   `undefined` means "no case this side knows" (a newer peer) — see the comments in the .proto.
 * - int64/uint64 fields are plain `number`s (milliseconds since the epoch, byte counts); decoding a
 *   value above Number.MAX_SAFE_INTEGER throws instead of losing precision.
 * - Enums are `as const` objects (`CommandStatus.SUCCEEDED`), not TypeScript enums.
 * - `AgentServiceService` is the grpc-js service definition for `server.addService`, with
 *   `AgentServiceServer` the handler type; `AgentServiceClient` is the grpc-js client constructor.
 */
import type { AgentMessage, Command, ControlMessage } from './generated/wpcp/agent/v1/agent.ts';

export * from './generated/wpcp/agent/v1/agent.ts';

/**
 * The protocol version: the protobuf package. It changes only for a breaking change, which gets a
 * new package served side by side with this one; additive changes (new fields, new oneof cases)
 * keep it and are negotiated through `Hello.capabilities`.
 */
export const PROTOCOL_VERSION = 'wpcp.agent.v1';

/** The fully-qualified gRPC service name (for health checks, channelz, logs). */
export const AGENT_SERVICE_NAME = `${PROTOCOL_VERSION}.AgentService`;

/** The case names of the `AgentMessage.message` oneof: `'hello' | 'heartbeat' | ...`. */
export type AgentMessageCase = NonNullable<AgentMessage['message']>['$case'];
/** The case names of the `ControlMessage.message` oneof: `'welcome' | 'command' | ...`. */
export type ControlMessageCase = NonNullable<ControlMessage['message']>['$case'];
/** The case names of the `Command.payload` oneof: `'noop' | 'ping' | ...`. */
export type CommandPayloadCase = NonNullable<Command['payload']>['$case'];

/** The `value` type of one case of a oneof, e.g. `OneofValue<AgentMessage['message'], 'hello'>` is `Hello`. */
export type OneofValue<Oneof, Case extends string> =
  Extract<Oneof, { $case: Case }> extends { value: infer V } ? V : never;
