// A local store's unfinished writes: the temporary files ("%.tmp.*") of puts that a crash or a
// kill cut short before the rename that makes an object exist. Nothing else ever reads them;
// they only take space until removed.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { errorCode } from './errors';
import { TEMP, keyOf } from './store-local-keys';
import type { UnfinishedWrite } from './store';

const PAGE = 1000;

/**
 * Temporary files under `root` older than `before` whose folder's key starts with `prefix` (or
 * that lie in a folder on the way to it), page by page; a missing root holds none.
 */
export async function* staleTempFiles(root: string, prefix: string, before: Date): AsyncGenerator<UnfinishedWrite[]> {
  let page: UnfinishedWrite[] = [];
  for await (const found of walk(root, [])) {
    const folderKey = found.components.length ? keyOf(found.components) + '/' : '';
    if (!(folderKey.startsWith(prefix) || prefix.startsWith(folderKey))) continue;
    if (found.started >= before) continue;
    page.push({ key: folderKey, id: found.name, started: found.started });
    if (page.length >= PAGE) {
      yield page;
      page = [];
    }
  }
  if (page.length) yield page;
}

/** Removes one temporary file; one removed already is not an error. */
export async function removeTempFile(root: string, write: UnfinishedWrite, folderOf: (key: string) => string): Promise<void> {
  if (!write.id.startsWith(TEMP) || write.id.includes('/')) throw new Error(`${JSON.stringify(write.id)} is not a temporary file of this store`);
  const dir = write.key === '' ? root : folderOf(write.key.slice(0, -1));
  await fsp.unlink(path.join(dir, write.id)).catch((err) => {
    if (errorCode(err) !== 'ENOENT') throw err;
  });
}

async function* walk(dir: string, components: string[]): AsyncGenerator<{ components: string[]; name: string; started: Date }> {
  let entries;
  try {
    entries = await fsp.readdir(path.join(dir, ...components), { withFileTypes: true });
  } catch (err) {
    if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return;
    throw err;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.isDirectory()) {
      yield* walk(dir, [...components, entry.name]);
    } else if (entry.name.startsWith(TEMP)) {
      const stat = await fsp.lstat(path.join(dir, ...components, entry.name)).catch(() => undefined);
      if (stat) yield { components, name: entry.name, started: stat.mtime };
    }
  }
}
