import { isIP } from 'node:net';
import { isHostPort } from '../config.ts';

export interface ServerAddress {
  /** Host name or IP address, without the brackets of an IPv6 literal. */
  host: string;
  port: number;
  /** The `host:port` form ([ipv6]:port for IPv6), as grpc-js takes it. */
  target: string;
  /** True when `host` is an IP address (no SNI: RFC 6066 allows host names only). */
  isIp: boolean;
}

/** Parse `host:port`, `a.b.c.d:port` or `[ipv6]:port`. Throws a one-line Error otherwise. */
export function parseServerAddress(value: string): ServerAddress {
  if (!isHostPort(value)) {
    throw new Error(
      `invalid server address ${JSON.stringify(value)}: expected HOST:PORT (e.g. cp.example.com:8443)`,
    );
  }
  const colon = value.lastIndexOf(':');
  const rawHost = value.slice(0, colon);
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  return { host, port: Number(value.slice(colon + 1)), target: value, isIp: isIP(host) !== 0 };
}
