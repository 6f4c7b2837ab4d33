import { z } from 'zod';
import { type ErrorCode, errorCatalogue } from '../errors/catalogue.ts';

const codes = Object.keys(errorCatalogue) as [ErrorCode, ...ErrorCode[]];

/** The shape of every error answer: `{ code, message }`, plus `details` for validation problems. */
export const ErrorResponse = z
  .object({
    code: z.enum(codes),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Error' });
export type ErrorResponse = z.infer<typeof ErrorResponse>;
