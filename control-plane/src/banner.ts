import path from 'node:path';
import type { Config } from './config.ts';
import type { ControlPlane } from './control-plane.ts';

/**
 * The few lines an operator needs after `npm start`, printed as plain text (not into the JSON
 * logs). The generated admin password itself is shown only on a terminal; otherwise the path of
 * the 0600 file that holds it.
 */
export function printBanner({
  config,
  address,
  controlPlane,
}: {
  config: Config;
  address: string;
  controlPlane: ControlPlane;
}): void {
  const { admin, masterKey, embedded } = controlPlane;
  const lines = [
    '',
    `wpcp control plane listening on ${address}`,
    `  API docs:   ${address}/docs`,
    `  database:   ${embedded ? `embedded PostgreSQL in ${path.join(config.dataDir, 'postgres')} (port ${config.embeddedPostgresPort})` : 'DATABASE_URL'}`,
  ];
  if (admin.outcome === 'created' && admin.passwordFile) {
    lines.push(`  admin user: ${admin.email} (created); password saved in ${admin.passwordFile}`);
    if (process.stdout.isTTY) lines.push(`  password:   ${admin.generatedPassword}`);
  } else {
    lines.push(
      `  admin user: ${admin.email}${admin.outcome === 'created' ? ' (created with WPCP_ADMIN_PASSWORD)' : ''}`,
    );
  }
  if (masterKey.generatedFile) {
    lines.push(`  master key: generated into ${masterKey.generatedFile}; back it up, or set WPCP_MASTER_KEY`);
  } else if (masterKey.source === 'file') {
    lines.push(`  master key: ${path.join(config.dataDir, 'master-key')}`);
  }
  const names = [...config.grpc.publicNames.dnsNames, ...config.grpc.publicNames.ipAddresses].join(', ');
  lines.push(
    `  agents:     gRPC (TLS) on ${config.grpc.host}:${controlPlane.gateway.port}, certificate for ${names}`,
    `  agent CA:   sha256:${controlPlane.agentCa.pin} (pinned by join tokens from POST /api/nodes)`,
  );
  if (controlPlane.localNode) {
    const agentDir = path.join(config.dataDir, 'agent');
    lines.push(
      `  this node:  enrolled as "local" (${controlPlane.localNode.nodeId}); agent state in ${agentDir}`,
    );
  }
  lines.push(
    `  log in:     curl -s -X POST ${address}/api/login -H 'content-type: application/json' -d '{"email":"${admin.email}","password":"..."}'`,
    '',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}
