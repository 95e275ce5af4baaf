/**
 * `wait`: Trigger.dev v4's waitpoint API, durable. Outside a run the token calls go straight to
 * the server; inside a run every call takes the next position of the run's journal, so a replay
 * returns what the first execution got (the same token, the same output, the same time). A run
 * waits on one waitpoint at a time, or on a set of them at once (`forAny`, `forAll`,
 * `forAtLeast`).
 */

import { randomBytes, randomUUID } from "node:crypto";

import { defaultClient } from "./client.js";
import {
  ApiError,
  UnsupportedOptionError,
  WaitpointRejectedError,
  WaitpointTimeoutError,
  refuseUnsupported,
} from "./errors.js";
import { type RunExecution, currentRun, runScope } from "./journal.js";
import {
  type CreateWaitpointTokenRequestBody,
  type CreateWaitpointTokenResponse,
  type CursorPagePromise,
  type ListWaitpointTokensQueryParams,
  type PageCursor,
  type TokenRef,
  type WaitpointListTokenItem,
  type WaitpointRetrievedToken,
  type WaitpointTokenDeadlines,
  type WaitpointTokenRejection,
  createTokenBody,
  extendTokenBody,
  rejectTokenBody,
  retrievedToken,
  tokenApi,
  tokenDeadlines,
  tokenId,
  tokenPages,
} from "./tokens.js";
import {
  MAX_SET_WAITS,
  type PageWire,
  type ProlongWire,
  type TokenDetailWire,
  type TokenItemWire,
  type WaitForOne,
} from "./wire.js";

/** The result of waiting on a token: its output, or the timeout error (as in Trigger.dev). */
export type WaitpointTokenTypedResult<T> = { ok: true; output: T } | { ok: false; error: Error };

/**
 * The promise `wait.forToken` returns: `await` it for the result, or call `.unwrap()` for the
 * output, which throws a {@link WaitpointTimeoutError} if the token timed out (a
 * {@link WaitpointRejectedError}, which is one, if it was rejected).
 */
export class ManualWaitpointPromise<TOutput> extends Promise<WaitpointTokenTypedResult<TOutput>> {
  // Derived promises (`then`, `catch`) are plain promises.
  static override get [Symbol.species]() {
    return Promise;
  }

  /** The output, or a throw of the timeout (or rejection) error. */
  unwrap(): Promise<TOutput> {
    return this.then((result) => {
      if (result.ok) return result.output;
      throw result.error instanceof WaitpointTimeoutError ? result.error : new WaitpointTimeoutError(result.error.message);
    });
  }
}

/** A waitpoint's result as the server records it: its output, or why there is none. */
type RecordedOutcome = {
  ok?: boolean;
  output?: unknown;
  error?: { message?: unknown; code?: unknown; data?: unknown };
  rejected?: boolean;
};

/** The error of a waitpoint that did not complete: its rejection's, or its timeout's. */
function failure(recorded: RecordedOutcome): WaitpointTimeoutError {
  const message = typeof recorded.error?.message === "string" ? recorded.error.message : undefined;
  const code = typeof recorded.error?.code === "string" ? recorded.error.code : undefined;
  if (recorded.rejected === true) {
    return new WaitpointRejectedError(message ?? "Waitpoint rejected", code ?? "WAITPOINT_REJECTED", recorded.error?.data);
  }
  return new WaitpointTimeoutError(message ?? "Waitpoint timed out", code);
}

/** How long `wait.for` waits: exactly one unit (months are 30 days, years 365, as in Trigger.dev). */
export type WaitPeriod =
  | { seconds: number }
  | { minutes: number }
  | { hours: number }
  | { days: number }
  | { weeks: number }
  | { months: number }
  | { years: number };

/** The options of `wait.for`. */
export type WaitForOptions = WaitPeriod;

/** The options of `wait.until`. */
export interface WaitUntilOptions {
  /** When to continue. */
  date: Date;
  /** Throw instead of continuing at once when `date` has passed (checked when the wait is first made). */
  throwIfInThePast?: boolean;
}

const UNIT_MS = {
  seconds: 1_000,
  minutes: 60_000,
  hours: 3_600_000,
  days: 86_400_000,
  weeks: 7 * 86_400_000,
  months: 30 * 86_400_000,
  years: 365 * 86_400_000,
} as const;

/** The milliseconds of a period; `where` names the call (and the item) in errors. */
function periodMs(options: WaitForOptions, where: string): number {
  const idempotency = "idempotencyKey" in options || "idempotencyKeyTTL" in options;
  if (idempotency) {
    throw new UnsupportedOptionError(
      `${where}: \`idempotencyKey\` and \`idempotencyKeyTTL\` are not supported by waitpoint: a wait inside a run is ` +
        "made once per journal position, so a replay or retry never waits twice",
    );
  }
  const units = Object.keys(options) as (keyof typeof UNIT_MS)[];
  const unit = units[0];
  if (units.length !== 1 || unit === undefined || !(unit in UNIT_MS)) {
    throw new UnsupportedOptionError(
      `${where}: give exactly one of ${Object.keys(UNIT_MS).join(", ")}, got ${JSON.stringify(options)}`,
    );
  }
  const amount = (options as Record<string, number>)[unit] ?? Number.NaN;
  if (!Number.isFinite(amount) || amount < 0) {
    throw new RangeError(`${where}: ${unit} must be a number of at least 0, got ${amount}`);
  }
  return Math.round(amount * UNIT_MS[unit]);
}

/** A token's waitpoint id: `waitpoint_` is added when missing. */
function waitpointId(token: TokenRef): string {
  const raw = tokenId(token);
  return raw.startsWith("waitpoint_") ? raw : `waitpoint_${raw}`;
}

/** A duration wait, named as the journal names it. */
function durationWait(ms: number): Extract<WaitForOne, { type: "DURATION" }> {
  return { type: "DURATION", ms, name: `for ${ms}ms` };
}

/** A datetime wait, named as the journal names it; `where` names the call in errors. */
function datetimeWait(date: Date, where: string): Extract<WaitForOne, { type: "DATETIME" }> {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new RangeError(`${where}: \`date\` must be a valid Date`);
  }
  const until = date.toISOString();
  return { type: "DATETIME", until, name: `until ${until}` };
}

/** The u64 behind `wait.random()`, as the Rust SDK records it (a decimal string). */
function randomU64(): string {
  return randomBytes(8).readBigUInt64LE().toString();
}

/** A float in [0, 1) from a recorded u64: its top 53 bits. */
function unitFloat(u64: string): number {
  return Number(BigInt(u64) >> 11n) / 2 ** 53;
}

async function createToken(options?: CreateWaitpointTokenRequestBody): Promise<CreateWaitpointTokenResponse> {
  const body = createTokenBody(options);
  const run = runScope.getStore();
  if (run) return run.createToken(body);
  return await tokenApi.create(defaultClient(), body);
}

// `T` types the data at the call (`wait.completeToken<ApprovalToken>(id, {...})`), as in Trigger.dev.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
async function completeToken<T>(token: TokenRef, data: T): Promise<{ success: true }> {
  const id = tokenId(token);
  const run = runScope.getStore();
  if (run) {
    return run.recorded("COMPLETE_TOKEN", id, async () => {
      await run.completeToken(id, data);
      return { success: true as const };
    });
  }
  return await tokenApi.complete(defaultClient(), id, data);
}

/**
 * The statuses of a token call's refusal that a run records with the call: the same call would
 * be refused the same way again (a bad request, no such token, a token that finished, an output
 * that does not fit). Other failures (no server, a 5xx, a refused key) are not recorded: the
 * attempt fails, and a retry performs the call again.
 */
const RECORDED_REFUSALS: ReadonlySet<number> = new Set([400, 404, 409, 422]);

/** A token call's refusal, as a run records it in place of the answer. */
interface RecordedRefusal {
  refused: { status: number; message: string; code?: string };
}

function isRefusal(result: unknown): result is RecordedRefusal {
  return typeof result === "object" && result !== null && "refused" in result;
}

/**
 * A token call made inside a run, recorded as a `STEP` named `name` (`wait.rejectToken
 * waitpoint_…`): on replay the recorded answer is returned, and the call is not sent again. A
 * refusal that would come again (see {@link RECORDED_REFUSALS}) is recorded too, and thrown
 * again on replay as the same {@link ApiError}: a run that catches it replays as it ran.
 */
async function recordedTokenCall<T extends object>(run: RunExecution, name: string, perform: () => Promise<T>): Promise<T> {
  const result = await run.recorded<T | RecordedRefusal>("STEP", name, async () => {
    try {
      return await perform();
    } catch (error) {
      if (!(error instanceof ApiError) || !RECORDED_REFUSALS.has(error.status)) throw error;
      const prefix = `${error.status}: `;
      const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
      const refused: RecordedRefusal["refused"] = { status: error.status, message };
      if (error.code !== undefined) refused.code = error.code;
      return { refused };
    }
  });
  if (isRefusal(result)) throw new ApiError(result.refused.status, result.refused.message, result.refused.code);
  return result;
}

async function rejectToken(token: TokenRef, rejection: WaitpointTokenRejection): Promise<{ success: true }> {
  const id = tokenId(token);
  const body = rejectTokenBody(rejection);
  const run = runScope.getStore();
  if (run) {
    return recordedTokenCall(run, `wait.rejectToken ${id}`, async () => {
      await run.rejectToken(id, body);
      return { success: true as const };
    });
  }
  return await tokenApi.reject(defaultClient(), id, body);
}

async function heartbeatToken(token: TokenRef): Promise<WaitpointTokenDeadlines> {
  const id = tokenId(token);
  const run = runScope.getStore();
  const wire: ProlongWire = run
    ? await recordedTokenCall(run, `wait.heartbeatToken ${id}`, () => run.heartbeatToken(id))
    : await tokenApi.heartbeat(defaultClient(), id);
  return tokenDeadlines(wire);
}

async function extendToken(token: TokenRef, timeout: string | Date): Promise<WaitpointTokenDeadlines> {
  const id = tokenId(token);
  const body = extendTokenBody(timeout);
  const run = runScope.getStore();
  // The name leaves the timeout out: a date computed from the clock differs on replay, and the
  // recorded extend is the truth (as a datetime wait's deadline is).
  const wire: ProlongWire = run
    ? await recordedTokenCall(run, `wait.extendToken ${id}`, () => run.extendToken(id, body))
    : await tokenApi.extend(defaultClient(), id, body);
  return tokenDeadlines(wire);
}

async function retrieveToken<T>(token: TokenRef): Promise<WaitpointRetrievedToken<T>> {
  const id = tokenId(token);
  const run = runScope.getStore();
  const wire: TokenDetailWire = run
    ? await run.recorded("RETRIEVE_TOKEN", id, () => run.retrieveToken(id))
    : await tokenApi.retrieve(defaultClient(), id);
  return retrievedToken<T>(wire);
}

function listTokens(params: ListWaitpointTokensQueryParams = {}): CursorPagePromise<WaitpointListTokenItem> {
  const run = runScope.getStore();
  if (run) {
    // Each page is recorded as it is fetched (named by its cursor), so a replay reads the same tokens.
    return tokenPages(params, (cursor: PageCursor) => {
      const name = cursor.before === undefined ? (cursor.after ?? "") : `before ${cursor.before}`;
      return run.recorded<PageWire<TokenItemWire>>("LIST_TOKENS", name, () => run.listTokens(params, cursor));
    });
  }
  const client = defaultClient();
  return tokenPages(params, (cursor) => tokenApi.page(client, params, cursor));
}

function forToken<T>(token: TokenRef): ManualWaitpointPromise<T> {
  return new ManualWaitpointPromise<T>((resolve, reject) => {
    const waited = async (): Promise<WaitpointTokenTypedResult<T>> => {
      const run = currentRun("wait.forToken()");
      const id = waitpointId(token);
      const result = (await run.wait("WAIT_TOKEN", id, { type: "TOKEN", id })) as RecordedOutcome;
      if (result.ok === true) return { ok: true, output: result.output as T };
      return { ok: false, error: failure(result) };
    };
    waited().then(resolve, reject);
  });
}

async function waitFor(options: WaitForOptions): Promise<void> {
  const run = currentRun("wait.for()");
  const waitFor = durationWait(periodMs(options, "wait.for()"));
  await run.wait("WAIT_DATETIME", waitFor.name, waitFor);
}

async function waitUntil(options: WaitUntilOptions): Promise<void> {
  const run = currentRun("wait.until()");
  refuseUnsupported(
    "wait.until()",
    options,
    ["date", "throwIfInThePast"],
    ": a wait inside a run is made once per journal position, so a replay or retry never waits twice",
  );
  const waitFor = datetimeWait(options.date, "wait.until()");
  // Checked when the wait is made live only: on replay the date may have passed, and the
  // recorded wait is the truth.
  const refusePast = () => {
    if (options.throwIfInThePast === true && options.date.getTime() < run.now()) throw new Error("Date is in the past");
  };
  await run.wait("WAIT_DATETIME", waitFor.name, waitFor, refusePast);
}

/** One waitpoint of a set wait: a token (as `wait.forToken` takes it), a period (as `wait.for`), or a `Date`. */
export type WaitSetItem = TokenRef | WaitPeriod | Date;

/**
 * Where one waitpoint of a decided set wait stood: completed with its output (`null` for a
 * period or a date that passed), timed out with a {@link WaitpointTimeoutError} (rejected with a
 * {@link WaitpointRejectedError}, which is one), or still
 * pending (the set was decided without it). Narrow on `ok` (`true`, `false`, or absent when
 * pending).
 */
export type WaitSetMember<T = unknown> =
  | { id: string; ok: true; output: T; pending?: undefined }
  | { id: string; ok: false; error: WaitpointTimeoutError; pending?: undefined }
  | { id: string; ok?: undefined; pending: true };

/**
 * The result of a set wait: `ok` when enough waitpoints completed, not when so many timed out
 * that enough no longer can; and every waitpoint (its `id`, `waitpoint_…`: the token's, or the
 * one the server made for a period or a date) as it stood then, in the order given.
 */
export interface WaitSetResult<T = unknown> {
  ok: boolean;
  waitpoints: WaitSetMember<T>[];
}

/** The journal name of a wait for `needed` of `count` waitpoints: `any of 3`, `all of 3`, `2 of 3`. */
function setCondition(needed: number, count: number): string {
  if (needed === 1 && count > 1) return `any of ${count}`;
  if (needed === count) return `all of ${count}`;
  return `${needed} of ${count}`;
}

/** The error of a set wait that timeouts (or rejections) decided: the condition, and every waitpoint that did not complete. */
function setTimeoutError<T>(needed: number, waitpoints: WaitSetMember<T>[]): WaitpointTimeoutError {
  const timedOut = waitpoints.flatMap((member) => {
    if (member.ok !== false) return [];
    if (!(member.error instanceof WaitpointRejectedError)) return [`${member.id}: ${member.error.message}`];
    return [`${member.id}: rejected: ${member.error.message} (${member.error.code})`];
  });
  const rejected = waitpoints.some((member) => member.ok === false && member.error instanceof WaitpointRejectedError);
  return new WaitpointTimeoutError(
    `the wait for ${setCondition(needed, waitpoints.length)} waitpoints cannot be met: ` +
      `${timedOut.length} timed out${rejected ? " or were rejected" : ""} (${timedOut.join("; ")})`,
  );
}

/**
 * The promise `wait.forAny`, `wait.forAll` and `wait.forAtLeast` return: `await` it for the
 * result, or call `.unwrap()` for the waitpoints, which throws a {@link WaitpointTimeoutError}
 * (naming the condition and every waitpoint that timed out) when too many timed out.
 */
export class WaitSetPromise<TOutput = unknown> extends Promise<WaitSetResult<TOutput>> {
  // Derived promises (`then`, `catch`) are plain promises.
  static override get [Symbol.species]() {
    return Promise;
  }

  readonly #needed: number;

  /** Settles as `executor` says; `needed` is how many waitpoints must complete. */
  constructor(
    executor: (resolve: (result: WaitSetResult<TOutput>) => void, reject: (reason: unknown) => void) => void,
    needed: number,
  ) {
    super(executor);
    this.#needed = needed;
  }

  /** Every waitpoint as it stood (in the order given) when enough completed, or a throw of the timeout error. */
  unwrap(): Promise<WaitSetMember<TOutput>[]> {
    const needed = this.#needed;
    return this.then((result) => {
      if (result.ok) return result.waitpoints;
      throw setTimeoutError(needed, result.waitpoints);
    });
  }
}

/** The waitpoint `item` is, as the worker protocol takes it; `where` names the call and the item in errors. */
function setItem(item: WaitSetItem, where: string): WaitForOne {
  if (item instanceof Date) return datetimeWait(item, where);
  if (typeof item === "string") return { type: "TOKEN", id: waitpointId(item) };
  if (typeof item === "object" && (item as unknown) !== null) {
    if ("id" in item && typeof item.id === "string") return { type: "TOKEN", id: waitpointId(item) };
    if (!("id" in item)) return durationWait(periodMs(item, where));
  }
  throw new TypeError(
    `${where} must be a token (its id, or { id }), a period ({ seconds: 30 }, …) or a Date, ` +
      `got ${JSON.stringify(item)}`,
  );
}

/** Reads a set wait's result as the server records it. */
function setResult<T>(recorded: unknown, condition: string): WaitSetResult<T> {
  const { ok, waitpoints } = (recorded ?? {}) as { ok?: unknown; waitpoints?: unknown };
  if (typeof ok !== "boolean" || !Array.isArray(waitpoints)) {
    throw new Error(`the result of WAIT_SET "${condition}" is not a set wait's result: ${JSON.stringify(recorded)}`);
  }
  const members = waitpoints.map((member: RecordedOutcome & { id: string }): WaitSetMember<T> => {
    const { id } = member;
    if (member.ok === true) return { id, ok: true, output: (member.output ?? null) as T };
    if (member.ok === false) return { id, ok: false, error: failure(member) };
    return { id, pending: true };
  });
  return { ok, waitpoints: members };
}

/**
 * Waits (inside a run) until `needed` of `items` complete, or until so many timed out that
 * `needed` no longer can. `items` are 1 to 100 waitpoints, no token twice; `needed` is from 1 to
 * their number (a rejection with a RangeError or TypeError otherwise, before anything is sent).
 */
function forSet<T>(operation: string, needed: number, items: readonly WaitSetItem[]): WaitSetPromise<T> {
  return new WaitSetPromise<T>((resolve, reject) => {
    const waited = async (): Promise<WaitSetResult<T>> => {
      const run = currentRun(operation);
      const list: readonly WaitSetItem[] = items;
      if (!Array.isArray(items)) {
        throw new TypeError(`${operation}: the waitpoints must be an array, got ${JSON.stringify(items)}`);
      }
      if (list.length === 0 || list.length > MAX_SET_WAITS) {
        throw new RangeError(`${operation}: a set wait waits on 1 to ${MAX_SET_WAITS} waitpoints, not ${list.length}`);
      }
      if (!Number.isInteger(needed) || needed < 1 || needed > list.length) {
        throw new RangeError(
          `${operation}: needed must be from 1 to the number of waitpoints (${list.length}), not ${needed}`,
        );
      }
      const of = list.map((item, index) => setItem(item, `${operation}: item ${index}`));
      const tokens = of.flatMap((member) => (member.type === "TOKEN" ? [member.id] : []));
      const twice = tokens.find((id, index) => tokens.indexOf(id) !== index);
      if (twice !== undefined) throw new RangeError(`${operation}: token ${twice} is in the set twice`);
      const condition = setCondition(needed, of.length);
      return setResult<T>(await run.wait("WAIT_SET", condition, { type: "SET", needed, of }), condition);
    };
    waited().then(resolve, reject);
  }, needed);
}

function forAny<T>(items: readonly WaitSetItem[]): WaitSetPromise<T> {
  return forSet<T>("wait.forAny()", 1, items);
}

function forAll<T>(items: readonly WaitSetItem[]): WaitSetPromise<T> {
  return forSet<T>("wait.forAll()", Array.isArray(items) ? items.length : 0, items);
}

function forAtLeast<T>(needed: number, items: readonly WaitSetItem[]): WaitSetPromise<T> {
  return forSet<T>("wait.forAtLeast()", needed, items);
}

/**
 * Waitpoint tokens and durable waits, as Trigger.dev v4's `wait`; plus `step`, `now`, `random`
 * and `uuid` for the code of a run that must give the same answers on replay.
 */
export const wait = {
  /**
   * Creates a waitpoint token (anywhere). Inside a run it is created once: a replay or retry
   * gets the same token.
   */
  createToken,
  /**
   * Completes a token with `data` (anywhere; the first completion wins). A token created with an
   * `outputSchema` refuses data that does not fit it: an {@link ApiError} with status 422.
   */
  completeToken,
  /**
   * Rejects a token with an error (anywhere; waitpoint's own): a run waiting on it gets a
   * {@link WaitpointRejectedError} (a {@link WaitpointTimeoutError}) with its `message`, `code`
   * (`WAITPOINT_REJECTED` when absent) and `data`. The first outcome wins: rejecting a token that
   * finished changes nothing. Inside a run it is recorded: a replay does not reject again.
   */
  rejectToken,
  /**
   * Sends a heartbeat to a token created with `heartbeatTimeout` (anywhere; waitpoint's own): it
   * waits another `heartbeatTimeout` from now. Answers until when. A token that finished, or
   * whose time came, is an {@link ApiError} with status 409; one without `heartbeatTimeout`, 400.
   * Inside a run it is recorded: a replay gets the recorded answer (or refusal) and sends nothing.
   */
  heartbeatToken,
  /**
   * Moves a token's `timeoutAt` later (anywhere; waitpoint's own): to a duration from now
   * (`"1h"`) or a date. Answers until when. A time not later than the current one is an
   * {@link ApiError} with status 400; a token that finished, 409. Inside a run it is recorded: a
   * replay gets the recorded answer and sends nothing (so a duration counts from the first
   * execution, not from the replay).
   */
  extendToken,
  /** Retrieves a token with its output or timeout (or rejection) error (inside a run: as it was when first retrieved). */
  retrieveToken,
  /**
   * Lists tokens, newest first: `await` it for the first page, or `for await` over every token.
   * Inside a run, each page is recorded as it is fetched.
   */
  listTokens,
  /**
   * Waits (inside a run) until the token is completed or times out. While it waits the run is
   * suspended: it holds no slot, and no process needs to stay up for it.
   */
  forToken,
  /**
   * Waits (inside a run) until any one of `items` (tokens, periods, dates) completes, or every
   * one timed out: `{ ok, waitpoints }`, each waitpoint as it stood then. The run is suspended
   * meanwhile. `.unwrap()` gives the waitpoints, or throws a {@link WaitpointTimeoutError}.
   */
  forAny,
  /**
   * Waits (inside a run) until every one of `items` (tokens, periods, dates) completes, or one
   * timed out: `{ ok, waitpoints }`, each waitpoint as it stood then. The run is suspended
   * meanwhile. `.unwrap()` gives the waitpoints, or throws a {@link WaitpointTimeoutError}.
   */
  forAll,
  /**
   * Waits (inside a run) until `needed` of `items` (tokens, periods, dates) complete, or so many
   * timed out that `needed` no longer can: `{ ok, waitpoints }`, each waitpoint as it stood then.
   * The run is suspended meanwhile. `.unwrap()` gives the waitpoints, or throws a
   * {@link WaitpointTimeoutError}. The journal names the wait by its condition alone (`2 of 3`):
   * a replay matches whatever waitpoints the code gives now, and resumes as recorded.
   */
  forAtLeast,
  /** Waits (inside a run) for a period, counted by the server's clock from when the wait is made. */
  for: waitFor,
  /** Waits (inside a run) until a date. On replay the recorded wait is the truth, whatever date the code computes now. */
  until: waitUntil,
  /**
   * Runs `fn` once and records what it returns (as JSON keeps it): on replay the recorded value
   * is returned and `fn` is not called. Put side effects here: code between waits runs again on
   * replay, code in a step does not. A throw is not recorded (the attempt fails; a retry runs
   * `fn` again). A step interrupted mid-flight (the worker died after `fn` ran, before its value
   * was recorded) runs again: make its side effects idempotent (the run id and the step name
   * make a good idempotency key).
   */
  async step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    const run = currentRun("wait.step()");
    return await run.recorded("STEP", name, async () => fn());
  },
  /** The time now, read once and recorded: a replay gets the same instant. */
  async now(): Promise<Date> {
    const run = currentRun("wait.now()");
    const iso = await run.recorded("NOW", "now", () => Promise.resolve(new Date(run.now()).toISOString()));
    return new Date(iso);
  },
  /** A random float in [0, 1) (what `Math.random()` gives), drawn once and recorded. */
  async random(): Promise<number> {
    const run = currentRun("wait.random()");
    return unitFloat(await run.recorded("RANDOM", "u64", () => Promise.resolve(randomU64())));
  },
  /** A random (version 4) UUID, drawn once and recorded. */
  async uuid(): Promise<string> {
    const run = currentRun("wait.uuid()");
    return await run.recorded("RANDOM", "uuid", () => Promise.resolve(randomUUID()));
  },
};
