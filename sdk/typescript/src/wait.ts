/**
 * `wait`: Trigger.dev v4's waitpoint API, durable. Outside a run the token calls go straight to
 * the server; inside a run every call takes the next position of the run's journal, so a replay
 * returns what the first execution got (the same token, the same output, the same time).
 */

import { randomBytes, randomUUID } from "node:crypto";

import { defaultClient } from "./client.js";
import { UnsupportedOptionError, WaitpointTimeoutError, refuseUnsupported } from "./errors.js";
import { currentRun, runScope } from "./journal.js";
import {
  type CreateWaitpointTokenRequestBody,
  type CreateWaitpointTokenResponse,
  type CursorPagePromise,
  type ListWaitpointTokensQueryParams,
  type PageCursor,
  type TokenRef,
  type WaitpointListTokenItem,
  type WaitpointRetrievedToken,
  createTokenBody,
  retrievedToken,
  tokenApi,
  tokenId,
  tokenPages,
} from "./tokens.js";
import type { PageWire, TokenDetailWire, TokenItemWire } from "./wire.js";

/** The result of waiting on a token: its output, or the timeout error (as in Trigger.dev). */
export type WaitpointTokenTypedResult<T> = { ok: true; output: T } | { ok: false; error: Error };

/**
 * The promise `wait.forToken` returns: `await` it for the result, or call `.unwrap()` for the
 * output, which throws a {@link WaitpointTimeoutError} if the token timed out.
 */
export class ManualWaitpointPromise<TOutput> extends Promise<WaitpointTokenTypedResult<TOutput>> {
  // Derived promises (`then`, `catch`) are plain promises.
  static override get [Symbol.species]() {
    return Promise;
  }

  /** The output, or a throw of the timeout error. */
  unwrap(): Promise<TOutput> {
    return this.then((result) => {
      if (result.ok) return result.output;
      throw new WaitpointTimeoutError(result.error.message);
    });
  }
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

function periodMs(options: WaitForOptions): number {
  const idempotency = "idempotencyKey" in options || "idempotencyKeyTTL" in options;
  if (idempotency) {
    throw new UnsupportedOptionError(
      "wait.for(): `idempotencyKey` and `idempotencyKeyTTL` are not supported by waitpoint: a wait inside a run is " +
        "made once per journal position, so a replay or retry never waits twice",
    );
  }
  const units = Object.keys(options) as (keyof typeof UNIT_MS)[];
  const unit = units[0];
  if (units.length !== 1 || unit === undefined || !(unit in UNIT_MS)) {
    throw new UnsupportedOptionError(
      `wait.for(): give exactly one of ${Object.keys(UNIT_MS).join(", ")}, got ${JSON.stringify(options)}`,
    );
  }
  const amount = (options as Record<string, number>)[unit] ?? Number.NaN;
  if (!Number.isFinite(amount) || amount < 0) {
    throw new RangeError(`wait.for(): ${unit} must be a number of at least 0, got ${amount}`);
  }
  return Math.round(amount * UNIT_MS[unit]);
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
      const raw = tokenId(token);
      const id = raw.startsWith("waitpoint_") ? raw : `waitpoint_${raw}`;
      const result = (await run.wait("WAIT_TOKEN", id, { type: "TOKEN", id })) as {
        ok?: boolean;
        output?: unknown;
        error?: { message?: unknown };
      };
      if (result.ok === true) return { ok: true, output: result.output as T };
      const message = typeof result.error?.message === "string" ? result.error.message : "Waitpoint timed out";
      return { ok: false, error: new WaitpointTimeoutError(message) };
    };
    waited().then(resolve, reject);
  });
}

async function waitFor(options: WaitForOptions): Promise<void> {
  const run = currentRun("wait.for()");
  const ms = periodMs(options);
  const name = `for ${ms}ms`;
  await run.wait("WAIT_DATETIME", name, { type: "DURATION", ms, name });
}

async function waitUntil(options: WaitUntilOptions): Promise<void> {
  const run = currentRun("wait.until()");
  refuseUnsupported(
    "wait.until()",
    options,
    ["date", "throwIfInThePast"],
    ": a wait inside a run is made once per journal position, so a replay or retry never waits twice",
  );
  if (!(options.date instanceof Date) || Number.isNaN(options.date.getTime())) {
    throw new RangeError("wait.until(): `date` must be a valid Date");
  }
  const until = options.date.toISOString();
  const name = `until ${until}`;
  // Checked when the wait is made live only: on replay the date may have passed, and the
  // recorded wait is the truth.
  const refusePast = () => {
    if (options.throwIfInThePast === true && options.date.getTime() < run.now()) throw new Error("Date is in the past");
  };
  await run.wait("WAIT_DATETIME", name, { type: "DATETIME", until, name }, refusePast);
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
  /** Completes a token with `data` (anywhere; the first completion wins). */
  completeToken,
  /** Retrieves a token with its output or timeout error (inside a run: as it was when first retrieved). */
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
