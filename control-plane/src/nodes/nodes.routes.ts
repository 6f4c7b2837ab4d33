import {
  CreatedNode,
  CreateNodeRequest,
  ErrorResponse,
  JobAccepted,
  listResponse,
  Node,
  NodeListQuery,
} from '@wpcp/shared/api';
import { IdParams } from '@wpcp/shared/validation';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { NodesService } from './nodes.service.ts';

export const nodesRoutes: FastifyPluginAsyncZod<{ nodes: NodesService }> = async (app, { nodes }) => {
  app.post(
    '/api/nodes',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Create a node and its one-time join token',
        description:
          'The join token is shown only in this answer and expires after an hour (WPCP_JOIN_TOKEN_TTL_SECONDS). Give it to `wpcp-agent enroll`.',
        body: CreateNodeRequest,
        response: { 201: CreatedNode, 400: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(201).send(await nodes.create(request.body)),
  );

  app.get(
    '/api/nodes',
    {
      schema: {
        tags: ['nodes'],
        summary: 'List nodes, newest first',
        querystring: NodeListQuery,
        response: { 200: listResponse(Node), 400: ErrorResponse },
      },
    },
    async (request) => nodes.list(request.query),
  );

  app.get(
    '/api/nodes/:id',
    {
      schema: {
        tags: ['nodes'],
        summary: 'One node: status, agent, last heartbeat and its figures',
        params: IdParams,
        response: { 200: Node, 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => nodes.get(request.params.id),
  );

  app.post(
    '/api/nodes/:id/disable',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Disable a node: its stream is closed at once and its certificate refused',
        params: IdParams,
        response: { 200: Node, 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => nodes.disable(request.params.id),
  );

  app.post(
    '/api/nodes/:id/enable',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Enable a disabled node again',
        params: IdParams,
        response: { 200: Node, 400: ErrorResponse, 404: ErrorResponse },
      },
    },
    async (request) => nodes.enable(request.params.id),
  );

  app.post(
    '/api/nodes/:id/ping',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Ping the node through the command path (a job)',
        params: IdParams,
        response: { 202: JobAccepted, 400: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse },
      },
    },
    async (request, reply) => reply.code(202).send(await nodes.ping(request.params.id)),
  );
};
