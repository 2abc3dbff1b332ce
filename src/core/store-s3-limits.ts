// S3's bounds on multipart uploads, and the part size used within them. Kept apart from the
// transfer code so that a command's flags can be checked without loading the AWS SDK.
export const MIN_PART_SIZE = 5 << 20;
export const MAX_PART_SIZE = 5 * 1024 ** 3;
export const MAX_PARTS = 10_000;
/** As aws-cli: objects above 8 MiB go up in 8 MiB parts and are read in 8 MiB ranges. */
export const DEFAULT_PART_SIZE = 8 << 20;
