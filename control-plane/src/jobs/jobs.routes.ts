import { ErrorResponse, Job, JobListQuery, JobLogLine, JobLogsQuery, listResponse } from '@wpcp/shared/api';
import { IdParams } from '@wpcp/shared/validation';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { JobsService } from './jobs.service.ts';

export const jobsRoutes: FastifyPluginAsyncZod<{ jobs: JobsService }> = async (app, { jobs }) => {
  app.get(
    '/api/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'List jobs, newest first',
        querystring: JobListQuery,
        response: { 200: listResponse(Job), 400: ErrorResponse },
      },
    },
    async (request) => jobs.list(request.query),
  );

  app.get(
    '/api/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'One job with its steps, output and error',
        params: IdParams,
        response: { 200: Job, 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => jobs.get(request.params.id),
  );

  app.get(
    '/api/jobs/:id/logs',
    {
      schema: {
        tags: ['jobs'],
        summary: "Log lines of the job's node commands, oldest first",
        description:
          'Progress and output lines the node streamed while the job ran, bounded per job (WPCP_JOB_LOG_MAX_LINES) with secrets redacted. Follow `next_cursor` to read further pages.',
        params: IdParams,
        querystring: JobLogsQuery,
        response: { 200: listResponse(JobLogLine), 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => jobs.logs(request.params.id, request.query),
  );

  app.post(
    '/api/jobs/:id/cancel',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a queued job at once, or ask a running one to stop',
        params: IdParams,
        response: { 200: Job, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request) => jobs.cancel(request.params.id),
  );
};
