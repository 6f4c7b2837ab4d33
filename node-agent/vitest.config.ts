import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    // The session tests run a real agent against an in-process gRPC server and wait for
    // reconnects and keepalive timeouts: a few seconds each at most.
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
