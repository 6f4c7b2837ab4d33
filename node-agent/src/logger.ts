import pino, { type Logger } from 'pino';

/**
 * Paths pino replaces with "[redacted]" wherever they appear in a log line. The agent logs no
 * secret on purpose; this is the safety net for the fields that could carry one.
 */
export const REDACTED_PATHS = [
  'joinToken',
  'token',
  'keyPem',
  'privateKey',
  'password',
  '*.joinToken',
  '*.token',
  '*.keyPem',
  '*.privateKey',
  '*.password',
  '*.secret',
];

export function createLogger(options: {
  level: string;
  destination?: pino.DestinationStream;
  base?: Record<string, unknown>;
}): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'wpcp-agent', ...options.base },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination,
  );
}
