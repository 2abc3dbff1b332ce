// The store an object record is read from: the URL a command was given, or else the record's
// own "store" (as s3-list writes it), each opened once per run.
import type { Context } from './command';
import { UsageError } from './errors';
import type { Rec } from './records';
import { badRecord } from './stage';
import { openStore, storeErrorAt, type ObjectStore } from './store';
import type { S3Settings } from './store-s3-flags';

export class RecordStores {
  private readonly opened = new Map<string, ObjectStore>();

  constructor(
    private readonly ctx: Context,
    private readonly settings: S3Settings,
    /** The command's URL argument, which every record then uses. */
    private readonly given: ObjectStore | undefined,
  ) {}

  for(rec: Rec): ObjectStore {
    if (this.given) return this.given;
    const url = rec.store;
    if (typeof url !== 'string' || url === '') {
      throw badRecord(this.ctx, rec, `object ${JSON.stringify(rec.key)} has no "store" field, and no URL was given to read it from`);
    }
    let store = this.opened.get(url);
    if (!store) {
      try {
        store = openStore(url, this.settings);
      } catch (err) {
        if (err instanceof UsageError) throw badRecord(this.ctx, rec, `"store": ${err.message}`);
        throw storeErrorAt(this.ctx, rec, err);
      }
      this.opened.set(url, store);
    }
    return store;
  }
}
