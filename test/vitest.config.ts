import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['system/**/*.test.ts', 'stack/**/*.test.ts'],
    globalSetup: ['../control-plane/src/testing/postgres.global-setup.ts'],
    // System suites start whole processes (control planes, agents, databases): one file at a time.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
