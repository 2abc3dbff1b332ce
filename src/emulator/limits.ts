// Fixed figures of the EBS Direct APIs.
export const BLOCK_SIZE = 524288;
export const BLOCKS_PER_GIB = 2048;
export const MAX_VOLUME_GIB = 65536;
export const MIN_TIMEOUT_MINUTES = 10;
export const MAX_TIMEOUT_MINUTES = 4320;
export const DEFAULT_TIMEOUT_MINUTES = 60;
export const MIN_PAGE = 100;
export const MAX_PAGE = 10000;
/** The account id DescribeSnapshots and StartSnapshot report as owner. */
export const OWNER_ID = '111122223333';
