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
  /** WP-CLI exited non-zero (its `Error:` line is the message). */
  'wp_cli_error',
  /** A step ran before the one it depends on (e.g. WRITE_WP_CONFIG before CREATE_DATABASE). */
  'step_prerequisite_missing',
  /** A file or directory the agent would write is there and is not the agent's. */
  'path_conflict',
  /** WordPress core could not be installed from the configured source. */
  'core_install_failed',
  /** The PHP-FPM pool's socket did not come up after the reload. */
  'php_fpm_pool_not_ready',
  /** Copying an environment's files or database failed. */
  'clone_failed',
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
