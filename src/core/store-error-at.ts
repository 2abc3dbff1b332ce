// Store errors located at the input record they are about.
import type { Context } from './command';
import { SluiceError } from './errors';
import { LINE, type Rec } from './records';

/**
 * A store error about one input record, located as `command: source:line: ...`, keeping its
 * exit status (1, or 5 for integrity).
 */
export function storeErrorAt(ctx: Context, rec: Rec, err: unknown): Error {
  if (!(err instanceof Error)) return new SluiceError(`${ctx.command}: ${String(err)}`);
  const where = `${ctx.command}: ${ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}: `;
  const message = where + err.message.replace(new RegExp(`^${ctx.command}: `), '');
  const located = err instanceof SluiceError ? new SluiceError(message, err.exitCode) : new SluiceError(message);
  located.name = err.name;
  return located;
}
