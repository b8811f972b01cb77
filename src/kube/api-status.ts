// Owns how an API call's failure is recognised: client-node throws an ApiException carrying the
// HTTP status, and callers branch on 404 (gone), 409 (conflict) and 410 (expired watch).
import { ApiException } from '@kubernetes/client-node';

export function isApiStatus(error: unknown, code: number): boolean {
  return error instanceof ApiException && error.code === code;
}
