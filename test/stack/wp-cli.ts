// Where the WP-CLI test double lives (what WPCP_WP_CLI points at in the stack tests).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const WP_CLI_DOUBLE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../wp-cli-double/wp',
);
