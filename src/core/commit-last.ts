// The write loop of the sinks that store objects and print a journal (s3-put, s3-copy): objects
// are written several at once and journaled in input order once durable; commit objects (a
// layout's header or index) wait until every other object is written and durable and the input's
// trailer was read and valid, so that a store never holds one without everything it points to.
import type { Context } from './command';
import type { Encoder } from './encode';
import { SluiceError } from './errors';
import { OrderedOutput } from './ordered';
import type { Rec } from './records';
import type { Batches } from './stage';
import type { ObjectStore } from './store';

export interface ObjectWriter {
  /**
   * What to do with an input record: pass it on to the journal as it is, write it now, or hold
   * it until the end (a commit object). Throws to refuse the record, before anything of it is
   * written.
   */
  sort(rec: Rec): 'pass' | 'write' | 'commit';
  /** Writes one object (or a piece of one); resolves to its journal record, if it has one yet. */
  write(rec: Rec): Promise<Rec | undefined>;
  /** Called once the whole input was read and its trailer was valid; throws if it lacks something. */
  endOfInput?(): void;
  /** Bytes the record holds in memory until written. */
  heldBytes(rec: Rec): number;
  /** Makes what was written so far durable; gives what `out` holds, ready to journal. */
  durable(out: Encoder): Promise<Buffer[]>;
}

/** The body of a transform() that writes every object of its input with `writer`. */
export function writeCommitLast(ctx: Context, writer: ObjectWriter, jobs: number, maxBytesInFlight: number) {
  return async function* (batches: Batches, out: Encoder): AsyncGenerator<Buffer[]> {
    const output = new OrderedOutput(jobs, maxBytesInFlight);
    const commits: Rec[] = [];
    try {
      for await (const batch of batches) {
        for (const rec of batch) {
          const action = writer.sort(rec);
          if (action === 'pass') output.records(rec);
          else if (action === 'commit') commits.push(rec);
          else {
            while (output.full) {
              await output.flush(out);
              yield await writer.durable(out);
            }
            // Counted before the write starts: a store may move the bytes to a hashing thread.
            const held = writer.heldBytes(rec);
            output.job(writer.write(rec).then((written) => (written ? [written] : [])), held);
          }
        }
        await output.flush(out);
        yield await writer.durable(out);
      }
      writer.endOfInput?.();
      await output.flush(out, true);
    } catch (err) {
      // Every object that was written is journaled, those after a failed one too, so that a
      // rerun can skip them; if they cannot be made durable, none of them is.
      await output.settle(out);
      const journal = await writer.durable(out).catch(() => undefined);
      if (journal) yield journal;
      throw err;
    }
    // The input ended with a valid trailer; every other object is written, and durable before
    // a commit object can point to it.
    yield await writer.durable(out);
    if (ctx.signal.aborted) throw ctx.signal.reason;
    try {
      for (const rec of commits) {
        const written = await writer.write(rec);
        if (written) out.push(written);
      }
    } finally {
      const journal = await writer.durable(out).catch(() => undefined);
      if (journal) yield journal;
    }
  };
}

/** ObjectWriter.durable() for a writer into one store: flushes it, then gives the journal. */
export async function flushThenTake(ctx: Context, store: ObjectStore, out: Encoder): Promise<Buffer[]> {
  try {
    await store.flush();
  } catch (err) {
    throw new SluiceError(`${ctx.command}: ${(err as Error).message}`);
  }
  return out.take();
}
