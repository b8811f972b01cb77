// Owns how a failed Kubernetes API call (or any error) is told in one line: client-node's
// ApiException spans lines and carries the whole response; the line keeps its status and the
// Status message (a 403 names the missing permission), or a network error and its cause. Recognised
// by shape, not by class, so the CLI can use it without loading @kubernetes/client-node.

interface ApiExceptionShape {
  code: number;
  body: unknown;
  headers: unknown;
}

function isApiException(error: unknown): error is Error & ApiExceptionShape {
  return error instanceof Error && typeof (error as Partial<ApiExceptionShape>).code === 'number' && 'body' in error && 'headers' in error;
}

export function describeError(error: unknown): string {
  if (isApiException(error)) {
    const message = statusMessage(error.body);
    return `the Kubernetes API answered ${error.code}${message ? `: ${message}` : ''}`;
  }
  if (!(error instanceof Error)) return oneLine(String(error));
  const cause = (error as { cause?: unknown }).cause;
  return oneLine(cause instanceof Error && !error.message.includes(cause.message) ? `${error.message}: ${cause.message}` : error.message);
}

/** The `message` of a Status body, which client-node hands over as JSON text or parsed. */
function statusMessage(body: unknown): string | undefined {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return oneLine(body).slice(0, 200) || undefined;
    }
  }
  const message = (value as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? oneLine(message) : undefined;
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ').trim();
}
