/**
 * The one way an error reaches a log line: `logger.warn({ err: errorFields(err) }, '…')`. Always a plain
 * object with `type` and `message` (plus `code` and `cause` when the error has them), never a string in one
 * place and an Error in another. Messages are built by weft's own error classes, which never carry secrets.
 */
export interface ErrorFields {
  type: string;
  message: string;
  code?: string | number;
  cause?: ErrorFields;
}

export function errorFields(err: unknown, depth = 0): ErrorFields {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) };
  const fields: ErrorFields = { type: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') fields.code = code;
  if (err.cause !== undefined && depth < 3) fields.cause = errorFields(err.cause, depth + 1);
  return fields;
}

/** The message of any thrown value, for errors that wrap another one. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
