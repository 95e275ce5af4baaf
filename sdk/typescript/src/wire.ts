/**
 * The JSON bodies of waitpoint's HTTP API, field for field as the server sends and takes them
 * (`crates/types/src/api.rs`): dates are ISO 8601 strings, optional fields are absent.
 */

/** A token's status, as Trigger.dev reports it: a rejected token reads `TIMED_OUT` (see its `outcome`). */
export type WaitpointTokenStatus = "WAITING" | "COMPLETED" | "TIMED_OUT";

/** How a token finished (waitpoint's own field): a rejection is `REJECTED`. */
export type WaitpointTokenOutcome = "COMPLETED" | "TIMED_OUT" | "REJECTED";

/** The signature schemes a token's callback URL can check deliveries with. */
export type CallbackVerifierScheme = "standard-webhooks" | "stripe" | "github" | "hmac-sha256";

/** A token's `callbackVerifier` as create takes it. */
export interface CallbackVerifierWire {
  scheme: CallbackVerifierScheme;
  secret: string;
  header?: string;
}

/** A token's callback verifier as retrieve shows it: never its secret. */
export interface CallbackVerifierInfo {
  scheme: CallbackVerifierScheme;
  /** The signature's header (`hmac-sha256` only). */
  header?: string;
}

/** `POST /api/v1/waitpoints/tokens`. */
export interface CreateTokenBody {
  timeout?: string;
  idempotencyKey?: string;
  idempotencyKeyTTL?: string;
  tags?: string[];
  outputSchema?: Record<string, unknown>;
  heartbeatTimeout?: string;
  callbackVerifier?: CallbackVerifierWire;
}

/** The answer to a create. */
export interface CreateWaitpointTokenResponse {
  /** `waitpoint_…`. */
  id: string;
  /** True when an active idempotency key returned an existing token. */
  isCached: boolean;
  /** The callback URL: a POST of any JSON to it completes the token, no credentials needed. */
  url: string;
  /** A JWT that may complete this one token. */
  publicAccessToken: string;
  /** The token's hosted approval page: a person opens it, with no sign-in, to approve or reject (waitpoint's own). */
  approvalUrl?: string;
  /** A POST to it, with no credentials, rejects the token; its body becomes the error's `data` (waitpoint's own). */
  rejectUrl?: string;
  /** For a token created with `heartbeatTimeout`: a POST to it, with no credentials, is a heartbeat (waitpoint's own). */
  heartbeatUrl?: string;
}

/** A token as listed. */
export interface TokenItemWire {
  id: string;
  url: string;
  status: WaitpointTokenStatus;
  outcome?: WaitpointTokenOutcome;
  completedAt?: string;
  timeoutAt?: string;
  completedAfter?: string;
  idempotencyKey?: string;
  idempotencyKeyExpiresAt?: string;
  tags: string[];
  createdAt: string;
}

/** A token as retrieved. */
export interface TokenDetailWire extends TokenItemWire {
  type: string;
  output?: string;
  outputType?: string;
  outputIsError?: boolean;
  completedVia?: string;
  outputSchema?: Record<string, unknown>;
  heartbeatTimeout?: string;
  heartbeatDeadline?: string;
  callbackVerifier?: CallbackVerifierInfo;
}

/** `POST /api/v1/waitpoints/tokens/{id}/reject`. */
export interface RejectTokenBody {
  error: { message: string; code?: string; data?: unknown };
}

/** The answer to a heartbeat or an extend: the token still waits, until then. */
export interface ProlongWire {
  success: true;
  timeoutAt?: string;
  heartbeatDeadline?: string;
}

/** One page of a list. */
export interface PageWire<T> {
  data: T[];
  pagination: { next?: string; previous?: string };
}

/** `POST /api/v1/tasks/{taskId}/trigger` options. */
export interface TriggerOptionsWire {
  idempotencyKey?: string;
  idempotencyKeyTTL?: string;
  tags?: string[];
  maxAttempts?: number;
  delay?: string;
}

/** The answer to a trigger. */
export interface TriggerResponse {
  id: string;
  isCached: boolean;
  hint?: string;
}

/** A run's status. */
export type RunStatus = "QUEUED" | "DELAYED" | "EXECUTING" | "WAITING" | "COMPLETED" | "FAILED" | "CANCELED";

/** A run's error. */
export interface RunErrorBody {
  /** `TaskError`, `NonDeterminism`, `WaitpointTimeoutError`, …. */
  name: string;
  message: string;
}

/** A run as retrieved. */
export interface RunDetailWire {
  id: string;
  taskId: string;
  status: RunStatus;
  payload?: unknown;
  output?: unknown;
  error?: RunErrorBody;
  attempt: number;
  maxAttempts: number;
  tags: string[];
  idempotencyKey?: string;
  idempotencyKeyExpiresAt?: string;
  delayedUntil?: string;
  waitingOn: { id: string; type: string; timeoutAt?: string }[];
  createdAt: string;
  startedAt?: string;
  updatedAt: string;
  finishedAt?: string;
  worker?: { id: string; lastSeenAt?: string };
  hint?: string;
}

/** A journal kind. */
export type JournalKind =
  | "STEP"
  | "CREATE_TOKEN"
  | "WAIT_TOKEN"
  | "WAIT_DATETIME"
  | "WAIT_SET"
  | "COMPLETE_TOKEN"
  | "RETRIEVE_TOKEN"
  | "LIST_TOKENS"
  | "NOW"
  | "RANDOM";

/** One journal entry: `result` is absent for a wait that has not finished (`null` is a result). */
export interface JournalEntry {
  seq: number;
  kind: string;
  name: string;
  result?: unknown;
}

/** A task a worker runs, and how many more runs of it it takes now. */
export interface TaskSlots {
  id: string;
  slots: number;
}

/** A run a worker executes, and the epoch of the claim it executes it under. */
export interface Lease {
  id: string;
  epoch: number;
}

/** `POST /api/v1/workers/{workerId}/poll`. */
export interface PollRequest {
  tasks: TaskSlots[];
  waitMs: number;
  holding: Lease[];
  leaving?: boolean;
  session: string;
}

/** A run handed to a worker. */
export interface ClaimedRun {
  id: string;
  taskId: string;
  payload: unknown;
  epoch: number;
  attempt: number;
  maxAttempts: number;
  journalLength: number;
  /** When the run resumes from a wait: that wait's entry, with its result. */
  resumed?: JournalEntry;
}

/** One waitpoint a run waits for. */
export type WaitForOne =
  | { type: "TOKEN"; id: string }
  | { type: "DATETIME"; until: string; name: string }
  | { type: "DURATION"; ms: number; name: string };

/**
 * What a run waits for: one waitpoint, or `needed` of a set of them (1: any, their number: all),
 * at most {@link MAX_SET_WAITS}, no token twice.
 */
export type WaitFor = WaitForOne | { type: "SET"; needed: number; of: WaitForOne[] };

/** The most waitpoints one set wait may wait for. */
export const MAX_SET_WAITS = 100;

/** The answer to a wait. */
export interface WaitResponse {
  entry: JournalEntry;
  suspended: boolean;
}

/** The answer to a token created for a run. */
export interface RunTokenResponse {
  entry: JournalEntry;
  token: CreateWaitpointTokenResponse;
}
