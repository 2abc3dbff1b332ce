// The journal of multipart uploads (`s3-put --uploads FILE`): what a rerun needs to continue an
// upload that a crash, a signal or a failure interrupted, instead of sending the object again.
//
// One NDJSON line per event, appended: an `upload` line when an upload starts (its id, and the
// size, part size, SHA-256, storage class and metadata of the object it is for), a `part` line
// per part the server accepted (its number, size, ETag and CRC32 as the server gave them, and
// the SHA-256 of the bytes sent), and an `upload` line with `state` "completed" or "aborted"
// when it ends. Lines are not flushed to disk one by one: a line lost in a crash only means a
// part is sent again, since a rerun trusts a part only when the server lists it too. A line cut
// short by a crash is dropped when the journal is opened.
import { promises as fsp } from 'node:fs';
import { SluiceError, errorCode } from './errors';

/** What an upload was started for: a rerun continues it only for exactly the same object. */
export interface UploadIdentity {
  store: string;
  key: string;
  size: number;
  partSize: number;
  /**
   * base64 SHA-256 of the whole object, when known before its bytes are (an object written in
   * pieces may not know it); every part kept is checked against its own SHA-256 anyway.
   */
  sha256?: string;
  storageClass?: string;
  metadata: Record<string, string>;
}

export interface JournaledPart {
  part: number;
  size: number;
  etag: string;
  crc32?: string;
  /** base64 SHA-256 of the part's bytes. */
  sha256: string;
}

export interface UnfinishedUpload extends UploadIdentity {
  uploadId: string;
  parts: Map<number, JournaledPart>;
}

export class UploadJournal {
  /** Unfinished uploads, by store and key: the latest one of each. */
  private readonly open = new Map<string, UnfinishedUpload>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly handle: fsp.FileHandle,
    /** Says on stderr what happens to the uploads it keeps. */
    readonly log: (message: string) => void,
  ) {}

  /** Opens (or creates) the journal at `file` and reads the uploads it leaves unfinished. */
  static async open(file: string, log: (message: string) => void): Promise<UploadJournal> {
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(file, 'a+');
    } catch (err) {
      throw new SluiceError(`${file}: cannot open the uploads journal: ${errorCode(err) ?? (err as Error).message}`);
    }
    const journal = new UploadJournal(file, handle, log);
    try {
      await journal.load();
    } catch (err) {
      await handle.close();
      throw err;
    }
    return journal;
  }

  /** The unfinished upload of `key` to `store` the journal knows of, if any. */
  unfinished(store: string, key: string): UnfinishedUpload | undefined {
    return this.open.get(slot(store, key));
  }

  started(uploadId: string, id: UploadIdentity): Promise<void> {
    this.open.set(slot(id.store, id.key), { ...id, uploadId, parts: new Map() });
    return this.append({ type: 'upload', state: 'started', uploadId, ...id });
  }

  partDone(store: string, key: string, uploadId: string, part: JournaledPart): Promise<void> {
    this.open.get(slot(store, key))?.parts.set(part.part, part);
    return this.append({ type: 'part', store, key, uploadId, ...part });
  }

  ended(store: string, key: string, uploadId: string, state: 'completed' | 'aborted'): Promise<void> {
    if (this.open.get(slot(store, key))?.uploadId === uploadId) this.open.delete(slot(store, key));
    return this.append({ type: 'upload', state, store, key, uploadId });
  }

  /** Waits for every line appended so far and closes the file. */
  async close(): Promise<void> {
    await this.writing.catch(() => {});
    await this.handle.close();
  }

  private append(line: object): Promise<void> {
    const text = JSON.stringify(line) + '\n';
    // One write at a time, in order: a part's line never lands before its upload's.
    this.writing = this.writing.then(() =>
      this.handle.appendFile(text).catch((err) => {
        throw new SluiceError(`${this.path}: cannot write to the uploads journal: ${errorCode(err) ?? (err as Error).message}`);
      }),
    );
    return this.writing;
  }

  private async load(): Promise<void> {
    const text = (await this.handle.readFile()).toString('utf8');
    const complete = text.lastIndexOf('\n') + 1;
    if (complete < text.length) {
      // The last line was cut short by a crash: drop it, or the next line would be glued to it.
      await this.handle.truncate(Buffer.byteLength(text.slice(0, complete)));
    }
    const lines = text.slice(0, complete).split('\n');
    lines.pop();
    lines.forEach((line, i) => {
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        throw new SluiceError(`${this.path}:${i + 1}: not a line of an uploads journal: ${JSON.stringify(line.slice(0, 80))}`, 4);
      }
      this.replay(rec, i + 1);
    });
  }

  private replay(rec: Record<string, unknown>, line: number): void {
    const where = slot(String(rec.store), String(rec.key));
    if (rec.type === 'upload' && rec.state === 'started') {
      const { type: _type, state: _state, ...upload } = rec;
      this.open.set(where, { ...(upload as unknown as UnfinishedUpload), parts: new Map() });
    } else if (rec.type === 'upload') {
      if (this.open.get(where)?.uploadId === rec.uploadId) this.open.delete(where);
    } else if (rec.type === 'part') {
      const upload = this.open.get(where);
      if (upload && upload.uploadId === rec.uploadId) {
        const { part, size, etag, crc32, sha256 } = rec as unknown as JournaledPart;
        upload.parts.set(part, { part, size, etag, crc32, sha256 });
      }
    } else {
      throw new SluiceError(`${this.path}:${line}: not a line of an uploads journal (type ${JSON.stringify(rec.type)})`, 4);
    }
  }
}

function slot(store: string, key: string): string {
  return `${store}\n${key}`;
}
