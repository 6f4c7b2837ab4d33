export { freePort } from './postgres.global-setup.ts';
export { startTestControlPlane, TEST_ADMIN, type TestControlPlane } from './test-control-plane.ts';
export { createTestDatabase } from './test-database.ts';
export { journal, scriptedCatalogue, scriptedJob } from './test-jobs.ts';
export { waitFor } from './wait-for.ts';
