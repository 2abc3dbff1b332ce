import { promises as fsp } from 'node:fs';
import { SluiceError } from './errors';

/**
 * Size in bytes of a block device. stat() reports 0 for devices and Node has no ioctl, so read
 * it from sysfs, which counts 512-byte sectors whatever the device's own sector size.
 */
export async function deviceSize(path: string, rdev: number): Promise<number> {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const sysfs = `/sys/dev/block/${major}:${minor}/size`;
  try {
    const sectors = Number((await fsp.readFile(sysfs, 'utf8')).trim());
    return sectors * 512;
  } catch (err) {
    throw new SluiceError(`${path}: cannot find the size of the block device (${sysfs}: ${(err as Error).message})`);
  }
}
