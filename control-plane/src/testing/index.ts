export { freePort } from './postgres.global-setup.ts';
export {
  type AgentIdentity,
  callEnroll,
  createNode,
  enrollAgent,
  type StreamStatus,
  TestAgentStream,
} from './test-agent.ts';
export {
  startTestControlPlane,
  TEST_ADMIN,
  TEST_MASTER_KEY,
  type TestControlPlane,
} from './test-control-plane.ts';
export { createTestDatabase } from './test-database.ts';
export { journal, nodeCommandJob, scriptedCatalogue, scriptedJob } from './test-jobs.ts';
export { type RecordedCommand, startTestNode, type TestNode, WORDPRESS_VERSION } from './test-node.ts';
export { waitFor } from './wait-for.ts';
