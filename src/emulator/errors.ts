// The service's error shapes: HTTP status, x-amzn-ErrorType and a {message, Reason} body.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

export function invalid(reason: string, message: string): ApiError {
  return new ApiError(400, 'ValidationException', message, reason);
}

export function snapshotNotFound(id: string): ApiError {
  return new ApiError(404, 'ResourceNotFoundException', `The snapshot '${id}' does not exist.`, 'SNAPSHOT_NOT_FOUND');
}

export function internal(message = 'An internal error occurred.'): ApiError {
  return new ApiError(500, 'InternalServerException', message);
}

/** Per-snapshot throttling (GetSnapshotBlock, PutSnapshotBlock). */
export function snapshotThrottled(id: string): ApiError {
  return new ApiError(400, 'RequestThrottledException', `The request rate for snapshot ${id} exceeds its limit.`, 'RESOURCE_LEVEL_THROTTLE');
}

/** Account-level throttling, what the error-retries page lists for every API. */
export function accountThrottled(op: string): ApiError {
  return new ApiError(400, 'ThrottlingException', `Rate exceeded for ${op} in this account.`);
}
