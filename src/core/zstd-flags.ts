// The flags zstd-chunk and zstd-unchunk share: the store layout and the number of worker threads.
import { intFlag, stringFlag, type Args } from './command';
import { UsageError } from './errors';
import { layoutName, type LayoutName } from './layout';
import { defaultJobs } from './zstd';

/** --layout and -j/--jobs (1 to 64, by default the number of CPUs); a bad value is a usage error. */
export function codecFlags(args: Args): { layout: LayoutName; jobs: number } {
  let layout: LayoutName;
  try {
    layout = layoutName(stringFlag(args, 'layout'));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { layout, jobs: intFlag(args, 'jobs', Math.min(64, defaultJobs()), 1, 64) };
}
