import pino, { type Logger } from 'pino';

/**
 * Paths pino replaces with "[redacted]" wherever they appear in a log line. Secrets (passwords,
 * tokens, keys) must never reach the logs; add the field here when a new kind of secret appears.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.password',
  '*.session_token',
  '*.join_token',
  '*.token',
  '*.private_key',
  '*.key_pem',
  '*.master_key',
  '*.login_url',
  'password',
  'session_token',
  'join_token',
  'token',
  'login_url',
];

export function createLogger(options: { level: string; destination?: pino.DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'wpcp-control-plane' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination,
  );
}
