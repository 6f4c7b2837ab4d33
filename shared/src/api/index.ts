export * from './auth.ts';
export * from './errors.ts';
export * from './jobs.ts';
export * from './metrics.ts';
export * from './nodes.ts';
export * from './pagination.ts';
