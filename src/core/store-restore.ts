// The store contract's words for archived objects (GLACIER, DEEP_ARCHIVE) and their restores.

/** Which object a call is about: the current one, or one version of it. */
export interface VersionChoice {
  /**
   * This version (as listVersions() names it) instead of the current object; a version the
   * store does not hold is a NotFoundError that names it. A store without history holds one,
   * "null".
   */
  versionId?: string;
}

export interface RestoreOptions extends VersionChoice {
  /** Days the restored copy stays readable. */
  days: number;
  /** S3's retrieval tier: Standard, Bulk or Expedited. */
  tier: string;
}

/**
 * Whether get() can read an object now: `readable` (it was never archived, or a restored copy
 * is there), `restoring` (a restore is under way), `archived` (a restore must be asked for).
 */
export type RestoreState = 'readable' | 'restoring' | 'archived';
