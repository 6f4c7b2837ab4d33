// gRPC clients of the control plane. Both kinds verify the server against the pinned CA only (never
// the system trust store) and check its certificate's names against the host the agent was given.
import * as grpc from '@grpc/grpc-js';
import { AgentServiceClient } from '@wpcp/shared/agent-protocol';
import type { ServerAddress } from './address.ts';

export interface ClientOptions {
  address: ServerAddress;
  /** The pinned CA certificate (PEM): the only issuer accepted for the server. */
  caPem: string;
  /** The node's key and certificate, for mutual TLS (Connect). Absent for Enroll. */
  keyPem?: string;
  certPem?: string;
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /** Extra channel options (tests). */
  channelOptions?: grpc.ChannelOptions;
}

export function createAgentClient(options: ClientOptions): AgentServiceClient {
  const credentials = grpc.credentials.createSsl(
    Buffer.from(options.caPem),
    options.keyPem === undefined ? null : Buffer.from(options.keyPem),
    options.certPem === undefined ? null : Buffer.from(options.certPem),
  );
  const channelOptions: grpc.ChannelOptions = {
    // The agent runs its own reconnect loop (stream.ts) and reopens the stream itself.
    'grpc.enable_channelz': 0,
    'grpc.enable_retries': 0,
    ...(options.keepaliveTimeMs === undefined
      ? {}
      : {
          // HTTP/2 pings both when idle and busy: a silently dead connection (NAT timeout,
          // pulled cable, frozen server) fails the stream within time + timeout.
          'grpc.keepalive_time_ms': options.keepaliveTimeMs,
          'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs ?? 5_000,
          'grpc.keepalive_permit_without_calls': 1,
        }),
    ...options.channelOptions,
  };
  return new AgentServiceClient(options.address.target, credentials, channelOptions);
}

/** A one-line description of a gRPC error for logs and messages. */
export function describeGrpcError(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'number') {
    const name = grpc.status[err.code] ?? String(err.code);
    const details = 'details' in err && typeof err.details === 'string' ? err.details : '';
    return details ? `${name}: ${details}` : name;
  }
  return err instanceof Error ? err.message : String(err);
}

export function grpcCode(err: unknown): number | undefined {
  return err && typeof err === 'object' && 'code' in err && typeof err.code === 'number'
    ? err.code
    : undefined;
}
