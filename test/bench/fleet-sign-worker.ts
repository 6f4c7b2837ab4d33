/**
 * Worker thread of the fleet benchmark's setup: signs node certificates with the control plane's
 * CA (`signCsr`), so that setting up 10,000+ nodes uses both cores.
 */
import { parentPort } from 'node:worker_threads';
import { signCsr } from '@wpcp/shared/pki';

export interface SignRequest {
  caCertPem: string;
  caKeyPem: string;
  csrPem: string;
  validityDays: number;
  nodeIds: string[];
}

export type SignReply = { ok: true; certs: string[] } | { ok: false; error: string };

function reply(message: SignReply): void {
  parentPort?.postMessage(message);
}

parentPort?.on('message', (request: SignRequest) => {
  void (async () => {
    try {
      const certs: string[] = [];
      for (const nodeId of request.nodeIds) {
        certs.push(
          await signCsr({
            caCertPem: request.caCertPem,
            caKeyPem: request.caKeyPem,
            csrPem: request.csrPem,
            subjectCommonName: nodeId,
            validityDays: request.validityDays,
            usage: 'client',
          }),
        );
      }
      reply({ ok: true, certs });
    } catch (error) {
      reply({ ok: false, error: error instanceof Error ? error.message : String(error) });
    }
  })();
});
