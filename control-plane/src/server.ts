import { printBanner } from './banner.ts';
import { ConfigError, loadConfig } from './config.ts';
import { startControlPlane } from './control-plane.ts';
import { createLogger } from './logger.ts';

/** Process concerns only: configuration, start, banner, signals and a hard-exit backstop. */
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`wpcp: ${error.message}\n`);
  process.exit(1);
}

const logger = createLogger({ level: config.logLevel });
const controlPlane = await startControlPlane({ config, logger }).catch((error: unknown) => {
  logger.fatal({ err: error }, 'control plane failed to start');
  process.stderr.write(`wpcp: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
const address = await controlPlane.app
  .listen({ host: config.http.host, port: config.http.port })
  .catch(async (error: unknown) => {
    // Stop what did start (the embedded database above all) before giving up.
    await controlPlane.close();
    const reason =
      (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? 'the address is already in use'
        : String(error);
    process.stderr.write(`wpcp: cannot listen on ${config.http.host}:${config.http.port}: ${reason}\n`);
    process.exit(1);
  });
printBanner({ config, address, controlPlane });

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // Backstop: a stuck shutdown must not keep the process (and its port) forever.
    setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, 30_000).unref();
    controlPlane.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
