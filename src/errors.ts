/**
 * Errors the services raise for a caller's mistake. Each carries the HTTP status and the
 * Vercel error `code` it is reported with, so services stay free of HTTP while the API
 * answers in Vercel's `{"error":{"code","message",...}}` format.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra fields reported beside `code` and `message`, as Vercel does (`fields`, `limit`, ...). */
    readonly extra: Record<string, unknown> = {},
    /**
     * Fields written at the body's top level beside `error`, where Vercel's own answer has them
     * there and not in an error object (the CLI's auto-provision fallbacks).
     */
    readonly topLevel: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const badRequest = (message: string, extra?: Record<string, unknown>) => new AppError(400, 'bad_request', message, extra);

export const unauthorized = (message = 'The request is not authorized.') => new AppError(401, 'unauthorized', message);

export const forbidden = (message = 'You do not have permission to access this resource.') => new AppError(403, 'forbidden', message);

/** Also what an object of another team looks like: never a hint that it exists. */
export const notFound = (what: string, id: string) => new AppError(404, 'not_found', `Could not find the ${what}: ${id}`);

export const conflict = (code: string, message: string) => new AppError(409, code, message);

export interface FieldError {
  key: string;
  message: string;
}

/** Vercel's `validation_error`: 400 with `fields: [{key, message}]` naming each bad key. */
export const validationError = (fields: FieldError[], message = `Invalid ${fields.map((f) => `${f.key}: ${f.message}`).join('; ')}`) =>
  new AppError(400, 'validation_error', message, { fields });
