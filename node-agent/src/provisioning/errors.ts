// Errors of the provisioning primitives. Each carries a stable code (for the job's error_code once
// the shared error catalogue names them) and a message that says what failed; command output in a
// message is already capped by runProcess and never contains secrets (they go on stdin).
export const PROVISIONING_ERROR_CODES = [
  'invalid_argument',
  'command_failed',
  'linux_user_exists',
  'database_exists',
  'database_user_exists',
  'config_check_failed',
  'config_reload_failed',
] as const;
export type ProvisioningErrorCode = (typeof PROVISIONING_ERROR_CODES)[number];

export class ProvisioningError extends Error {
  readonly code: ProvisioningErrorCode;

  constructor(code: ProvisioningErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProvisioningError';
    this.code = code;
  }
}

export function invalidArgument(message: string): ProvisioningError {
  return new ProvisioningError('invalid_argument', message);
}
