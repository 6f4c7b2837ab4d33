import { z } from 'zod';
import { Email } from '../validation/index.ts';

export const LoginRequest = z.strictObject({
  email: Email,
  password: z.string().min(1).max(1024),
});
export type LoginRequest = z.infer<typeof LoginRequest>;

export const LoginResponse = z.object({ session_token: z.string() });
export const LogoutResponse = z.object({ success: z.literal(true) });
