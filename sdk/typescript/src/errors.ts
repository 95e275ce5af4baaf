/**
 * The errors the SDK throws. Each has a `name` of its own, so code (and a run's recorded
 * error) can tell them apart.
 */

/** The server answered with an error status; `message` is its `error` field. */
export class ApiError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The machine-readable kind the server gave, such as `run_moved_on` or `worker_replaced`. */
  readonly code: string | undefined;

  constructor(status: number, message: string, code?: string) {
    super(`${status}: ${message}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/**
 * A token timed out before anyone completed it: what `wait.forToken(...).unwrap()` throws, and
 * the `error` of a result whose `ok` is false. The message is `Waitpoint timed out at <date>`
 * (`…: no heartbeat for 30s` when a heartbeat did not come in time). A run that fails with it is
 * not retried: every replay would see the same timeout.
 */
export class WaitpointTimeoutError extends Error {
  /**
   * The server's code, when it gave one: `TRIGGER_WAITPOINT_TIMEOUT` (its timeout came),
   * `WAITPOINT_HEARTBEAT_TIMEOUT` (no heartbeat came in time; waitpoint's own), or a rejection's
   * code ({@link WaitpointRejectedError}).
   */
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = "WaitpointTimeoutError";
    this.code = code;
  }
}

/**
 * A token was rejected with an error (waitpoint's own outcome: Trigger.dev has none): the
 * `error` of a result whose `ok` is false, and what `.unwrap()` throws. It is a
 * {@link WaitpointTimeoutError}, so code written for Trigger.dev, which knows only timeouts,
 * handles it as one; `code` and `data` are what the rejection gave. A run that fails with it is
 * not retried: every replay would see the same rejection.
 */
export class WaitpointRejectedError extends WaitpointTimeoutError {
  /** For programs, such as `PAYMENT_DECLINED` (`WAITPOINT_REJECTED` when the rejection gave none). */
  declare readonly code: string;
  /** Anything else the rejection gave. */
  readonly data: unknown;

  constructor(message: string, code: string, data?: unknown) {
    super(message, code);
    this.name = "WaitpointRejectedError";
    this.data = data;
  }
}

/**
 * The run's code no longer matches its journal: on replay it performed another operation (or
 * one with another name) than the one recorded at that position, or it returned before
 * replaying every recorded operation. The run fails without further attempts.
 */
export class NonDeterminismError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NonDeterminism";
  }
}

/**
 * This worker no longer holds the run (it was canceled, or given to another worker): every
 * further operation of this execution throws this, and nothing it does is reported.
 */
export class RunMovedOnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RunMovedOn";
  }
}

/**
 * Two operations of one run were in flight at once (such as `Promise.all` of two waits). A run
 * performs its `wait.*` calls one at a time; the run fails without further attempts.
 */
export class ParallelOperationsError extends Error {
  constructor(operation: string, inFlight: string) {
    super(
      `${operation} started while ${inFlight} was in flight: a run performs its wait.* calls one at a time ` +
        "(await each before the next; wait.forAny, wait.forAll and wait.forAtLeast wait on several waitpoints at once)",
    );
    this.name = "ParallelOperations";
  }
}

/** Throw it from a task to fail the run at once, without the retries left (as in Trigger.dev). */
export class AbortTaskRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AbortTaskRunError";
  }
}

/** An option Trigger.dev has and waitpoint does not: it is refused, never silently ignored. */
export class UnsupportedOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedOptionError";
  }
}

/** The server refused the worker's key (401 or 403): the worker stops. */
export class KeyRefusedError extends Error {
  constructor(apiUrl: string, status: number, message: string) {
    super(
      `the server at ${apiUrl} refused the secret key (${status}: ${message}): set WAITPOINT_SECRET_KEY to a key of ` +
        "the environment the tasks run in (`waitpoint env list` prints them)",
    );
    this.name = "KeyRefusedError";
  }
}

/** A newer process with the same instance name took the worker over: this one stops. */
export class WorkerReplacedError extends Error {
  constructor(workerId: string) {
    super(
      `${workerId} was taken over by a newer process with the same instance name: this process stops (each process ` +
        "needs an instance name of its own)",
    );
    this.name = "WorkerReplacedError";
  }
}

/** Refuses the keys of `options` that are not in `supported`, naming them and `what` they belong to. */
export function refuseUnsupported(what: string, options: object, supported: readonly string[], why = ""): void {
  const unsupported = Object.entries(options)
    .filter(([key, value]) => value !== undefined && !supported.includes(key))
    .map(([key]) => key);
  if (unsupported.length > 0) {
    const list = unsupported.map((key) => `\`${key}\``).join(", ");
    throw new UnsupportedOptionError(
      `${what}: ${list} ${unsupported.length === 1 ? "is" : "are"} not supported by waitpoint${why}; ` +
        `supported: ${supported.map((key) => `\`${key}\``).join(", ")}`,
    );
  }
}
