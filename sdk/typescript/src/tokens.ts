/**
 * Waitpoint tokens over HTTP, with Trigger.dev's shapes: options in, dates as `Date` out, the
 * output decoded, a list that pages itself. Used as is outside a run, and through the journal
 * inside one (`wait.ts`).
 */

import { type ApiClient, segment } from "./client.js";
import { WaitpointRejectedError, WaitpointTimeoutError, refuseUnsupported } from "./errors.js";
import type {
  CallbackVerifierInfo,
  CallbackVerifierScheme,
  CreateTokenBody,
  CreateWaitpointTokenResponse,
  PageWire,
  ProlongWire,
  RejectTokenBody,
  TokenDetailWire,
  TokenItemWire,
  WaitpointTokenOutcome,
  WaitpointTokenStatus,
} from "./wire.js";

export type {
  CallbackVerifierInfo,
  CallbackVerifierScheme,
  CreateWaitpointTokenResponse,
  WaitpointTokenOutcome,
  WaitpointTokenStatus,
} from "./wire.js";

const TOKENS = "api/v1/waitpoints/tokens";

/** A JSON Schema (draft 2020-12) object, standing alone (no `$ref` to a URL or a file). */
export type JsonSchema = Record<string, unknown>;

/**
 * How a token's callback URL checks that a delivery comes from the service holding `secret`
 * (waitpoint's own): a delivery whose signature does not verify over its raw body is refused
 * (401) and changes nothing. `standard-webhooks` (a `whsec_…` secret), `stripe`
 * (`Stripe-Signature`), `github` (`X-Hub-Signature-256`), or `hmac-sha256`: the hex HMAC-SHA256 of
 * the body in `X-Signature`, or in the `header` named. The secret is never shown again.
 */
export type CallbackVerifier =
  | { scheme: Exclude<CallbackVerifierScheme, "hmac-sha256">; secret: string }
  | { scheme: "hmac-sha256"; secret: string; header?: string };

/**
 * The options of `wait.createToken`: Trigger.dev's (`timeout`, `idempotencyKey`,
 * `idempotencyKeyTTL`, `tags`) and waitpoint's own (`outputSchema`, `heartbeatTimeout`,
 * `callbackVerifier`).
 */
export interface CreateWaitpointTokenRequestBody {
  /** A duration (`"10m"`), a date, or `"none"`; the server's default (`"10m"`) when absent. */
  timeout?: string | Date;
  /** Returns the same token for the same key while the key is active. */
  idempotencyKey?: string;
  /** How long the key stays active (`"1h"` when absent). */
  idempotencyKeyTTL?: string;
  /** Up to 10 tags, each shorter than 128 characters. */
  tags?: string | string[];
  /**
   * A JSON Schema every completion's output must fit (waitpoint's own): a completion that does
   * not is refused (an `ApiError` with status 422 naming the first place that does not fit)
   * and the token keeps waiting. Rejections and timeouts are not checked.
   */
  outputSchema?: JsonSchema;
  /**
   * Whoever works on the token must send a heartbeat (`wait.heartbeatToken`, or a POST to the
   * `heartbeatUrl` create answers with) at least this often (a duration, `"30s"`), or it times
   * out with the code `WAITPOINT_HEARTBEAT_TIMEOUT` (waitpoint's own). Heartbeats never move the
   * `timeout`.
   */
  heartbeatTimeout?: string;
  /** How the callback URL checks that deliveries are signed by the sender (waitpoint's own). */
  callbackVerifier?: CallbackVerifier;
}

/**
 * Why a token is rejected (`wait.rejectToken`): a run waiting on it gets a
 * {@link WaitpointRejectedError} with these.
 */
export interface WaitpointTokenRejection {
  /** Why (1 to 10,000 characters). */
  message: string;
  /** For programs, such as `PAYMENT_DECLINED` (`WAITPOINT_REJECTED` when absent). */
  code?: string;
  /** Anything else, as JSON. */
  data?: unknown;
}

/** Until when a token waits, as a heartbeat or an extend answers. */
export interface WaitpointTokenDeadlines {
  /** When it times out unless completed. */
  timeoutAt?: Date;
  /** When it times out unless another heartbeat comes first (a token with a `heartbeatTimeout`). */
  heartbeatDeadline?: Date;
}

/** A token as listed. */
export interface WaitpointListTokenItem {
  id: string;
  /** A URL that a POST of JSON completes the token through. */
  url: string;
  /** As Trigger.dev reports it: a rejected token reads `TIMED_OUT`; `outcome` tells. */
  status: WaitpointTokenStatus;
  /** How it finished, once it did: `COMPLETED`, `TIMED_OUT` or `REJECTED` (waitpoint's own). */
  outcome?: WaitpointTokenOutcome;
  completedAt?: Date;
  timeoutAt?: Date;
  idempotencyKey?: string;
  idempotencyKeyExpiresAt?: Date;
  tags: string[];
  createdAt: Date;
}

/**
 * A token as retrieved: for `COMPLETED` the `output` is what it was completed with; for
 * `TIMED_OUT` the `error` is a {@link WaitpointTimeoutError}, a {@link WaitpointRejectedError}
 * (with the rejection's `code` and `data`) when it was rejected (`outcome` is `REJECTED`).
 */
export interface WaitpointRetrievedToken<T> extends WaitpointListTokenItem {
  output?: T;
  error?: Error;
  /**
   * How it finished: `SECRET_KEY`, `PUBLIC_ACCESS_TOKEN`, `CALLBACK_URL`, `DASHBOARD`,
   * `APPROVAL_PAGE`, `TIMEOUT` or `HEARTBEAT_TIMEOUT`.
   */
  completedVia?: string;
  /** The JSON Schema its completions must fit, as given at create. */
  outputSchema?: JsonSchema;
  /** The longest time allowed between heartbeats, as given at create (`"30s"`). */
  heartbeatTimeout?: string;
  /** When it times out unless a heartbeat comes first. */
  heartbeatDeadline?: Date;
  /** How its callback URL checks deliveries (never the secret). */
  callbackVerifier?: CallbackVerifierInfo;
}

/** The filters and page of `wait.listTokens`, as in Trigger.dev. */
export interface ListWaitpointTokensQueryParams {
  /** `REJECTED` finds only rejected tokens; `TIMED_OUT` finds those and timed-out ones. */
  status?: WaitpointTokenOutcome | WaitpointTokenStatus | (WaitpointTokenOutcome | WaitpointTokenStatus)[];
  idempotencyKey?: string;
  tags?: string | string[];
  /** Created within this period before now: `"1h"`, `"1d"`, `"7d"`, …. */
  period?: string;
  from?: Date | number;
  to?: Date | number;
  /** Tokens per page (1 to 100). */
  limit?: number;
  /** Start after this cursor (a page's `pagination.next`). */
  after?: string;
  /** Start before this cursor (a page's `pagination.previous`). */
  before?: string;
}

/** A token as `wait.forToken`, `wait.completeToken`, `wait.rejectToken` and the others take it: its id, or `{ id }`. */
export type TokenRef = string | { id: string };

/** The id of `token`. */
export function tokenId(token: TokenRef): string {
  return typeof token === "string" ? token : token.id;
}

/** The create body for `options`, refusing options waitpoint does not have. */
export function createTokenBody(options: CreateWaitpointTokenRequestBody = {}): CreateTokenBody {
  refuseUnsupported("wait.createToken()", options, [
    "timeout",
    "idempotencyKey",
    "idempotencyKeyTTL",
    "tags",
    "outputSchema",
    "heartbeatTimeout",
    "callbackVerifier",
  ]);
  const body: CreateTokenBody = {};
  if (options.timeout !== undefined) {
    body.timeout = options.timeout instanceof Date ? options.timeout.toISOString() : options.timeout;
  }
  if (options.idempotencyKey !== undefined) body.idempotencyKey = options.idempotencyKey;
  if (options.idempotencyKeyTTL !== undefined) body.idempotencyKeyTTL = options.idempotencyKeyTTL;
  if (options.tags !== undefined) body.tags = typeof options.tags === "string" ? [options.tags] : options.tags;
  if (options.outputSchema !== undefined) body.outputSchema = options.outputSchema;
  if (options.heartbeatTimeout !== undefined) body.heartbeatTimeout = options.heartbeatTimeout;
  if (options.callbackVerifier !== undefined) {
    const verifier = options.callbackVerifier;
    refuseUnsupported("wait.createToken() callbackVerifier", verifier, ["scheme", "secret", "header"]);
    body.callbackVerifier = { ...verifier };
  }
  return body;
}

/** The reject body for `rejection`, refusing fields the server does not take. */
export function rejectTokenBody(rejection: WaitpointTokenRejection): RejectTokenBody {
  refuseUnsupported("wait.rejectToken()", rejection, ["message", "code", "data"]);
  const error: RejectTokenBody["error"] = { message: rejection.message };
  if (rejection.code !== undefined) error.code = rejection.code;
  if (rejection.data !== undefined) error.data = rejection.data;
  return { error };
}

/** The extend body for `timeout` (a duration from now, or a date). */
export function extendTokenBody(timeout: string | Date): { timeout: string } {
  if (timeout instanceof Date) {
    if (Number.isNaN(timeout.getTime())) throw new RangeError("wait.extendToken(): `timeout` must be a valid Date");
    return { timeout: timeout.toISOString() };
  }
  if (typeof (timeout as unknown) !== "string") {
    throw new TypeError(`wait.extendToken(): \`timeout\` must be a duration ("1h") or a Date, got ${JSON.stringify(timeout)}`);
  }
  return { timeout };
}

/** A heartbeat's or an extend's answer with its dates as `Date`s. */
export function tokenDeadlines(wire: ProlongWire): WaitpointTokenDeadlines {
  const deadlines: WaitpointTokenDeadlines = {};
  const timeoutAt = date(wire.timeoutAt);
  if (timeoutAt) deadlines.timeoutAt = timeoutAt;
  const heartbeatDeadline = date(wire.heartbeatDeadline);
  if (heartbeatDeadline) deadlines.heartbeatDeadline = heartbeatDeadline;
  return deadlines;
}

function date(text: string | undefined): Date | undefined {
  return text === undefined ? undefined : new Date(text);
}

/** A listed token with its dates as `Date`s. */
export function listItem(wire: TokenItemWire): WaitpointListTokenItem {
  const item: WaitpointListTokenItem = {
    id: wire.id,
    url: wire.url,
    status: wire.status,
    tags: wire.tags,
    createdAt: new Date(wire.createdAt),
  };
  if (wire.outcome !== undefined) item.outcome = wire.outcome;
  const completedAt = date(wire.completedAt);
  if (completedAt) item.completedAt = completedAt;
  const timeoutAt = date(wire.timeoutAt);
  if (timeoutAt) item.timeoutAt = timeoutAt;
  if (wire.idempotencyKey !== undefined) item.idempotencyKey = wire.idempotencyKey;
  const keyExpiresAt = date(wire.idempotencyKeyExpiresAt);
  if (keyExpiresAt) item.idempotencyKeyExpiresAt = keyExpiresAt;
  return item;
}

/** The stored output as a value: `{"json": v}` super+json gives `v`, JSON its value, text a string. */
function decodeOutput(data: string, dataType: string | undefined): unknown {
  if (dataType === "application/super+json" || dataType === "application/json" || dataType === undefined) {
    try {
      const value: unknown = JSON.parse(data);
      if (dataType === "application/super+json") return (value as { json?: unknown } | null)?.json;
      return value;
    } catch {
      return data;
    }
  }
  return data;
}

/** The error a token that did not complete finished with: its rejection, or its timeout. */
function tokenError(decoded: unknown, outcome: WaitpointTokenOutcome | undefined): WaitpointTimeoutError {
  const error = (typeof decoded === "object" ? decoded : null) as { message?: unknown; code?: unknown; data?: unknown } | null;
  const text = typeof error?.message === "string" ? error.message : undefined;
  const code = typeof error?.code === "string" ? error.code : undefined;
  if (outcome === "REJECTED") {
    return new WaitpointRejectedError(text ?? "Waitpoint rejected", code ?? "WAITPOINT_REJECTED", error?.data);
  }
  return new WaitpointTimeoutError(text ?? JSON.stringify(decoded), code);
}

/** A retrieved token with its output decoded, or its timeout (or rejection) as an error. */
export function retrievedToken<T>(wire: TokenDetailWire): WaitpointRetrievedToken<T> {
  const token: WaitpointRetrievedToken<T> = listItem(wire);
  if (wire.completedVia !== undefined) token.completedVia = wire.completedVia;
  if (wire.outputSchema !== undefined) token.outputSchema = wire.outputSchema;
  if (wire.heartbeatTimeout !== undefined) token.heartbeatTimeout = wire.heartbeatTimeout;
  const heartbeatDeadline = date(wire.heartbeatDeadline);
  if (heartbeatDeadline) token.heartbeatDeadline = heartbeatDeadline;
  if (wire.callbackVerifier !== undefined) token.callbackVerifier = wire.callbackVerifier;
  if (wire.output === undefined) return token;
  const decoded = decodeOutput(wire.output, wire.outputType);
  if (wire.outputIsError === true) {
    token.error = tokenError(decoded, wire.outcome);
  } else {
    token.output = decoded as T;
  }
  return token;
}

/** The query of one page of tokens. */
export function listQuery(params: ListWaitpointTokensQueryParams, cursor: PageCursor): URLSearchParams {
  refuseUnsupported("wait.listTokens()", params, [
    "status",
    "idempotencyKey",
    "tags",
    "period",
    "from",
    "to",
    "limit",
    "after",
    "before",
  ]);
  const query = new URLSearchParams();
  const many = (value: string | string[]) => (Array.isArray(value) ? value.join(",") : value);
  if (params.status !== undefined) query.append("filter[status]", many(params.status));
  if (params.idempotencyKey !== undefined) query.append("filter[idempotencyKey]", params.idempotencyKey);
  if (params.tags !== undefined) query.append("filter[tags]", many(params.tags));
  if (params.period !== undefined) query.append("filter[createdAt][period]", params.period);
  const millis = (value: Date | number) => String(value instanceof Date ? value.getTime() : value);
  if (params.from !== undefined) query.append("filter[createdAt][from]", millis(params.from));
  if (params.to !== undefined) query.append("filter[createdAt][to]", millis(params.to));
  if (params.limit !== undefined) query.append("page[size]", String(params.limit));
  if (cursor.after !== undefined) query.append("page[after]", cursor.after);
  if (cursor.before !== undefined) query.append("page[before]", cursor.before);
  return query;
}

/** Which page: after a cursor, before one, or the first. */
export interface PageCursor {
  after?: string;
  before?: string;
}

/** Fetches one page of tokens (as the server sends it) at a cursor. */
export type PageFetcher = (cursor: PageCursor) => Promise<PageWire<TokenItemWire>>;

/** One page of tokens; iterating it goes on through the next pages (as Trigger.dev's `CursorPage`). */
export class CursorPage<Item> implements AsyncIterable<Item> {
  /** The tokens of this page, newest first. */
  readonly data: Item[];
  /** Cursors of the neighbouring pages, each present only when there is such a page. */
  readonly pagination: { next?: string; previous?: string };
  readonly #fetch: (cursor: PageCursor) => Promise<CursorPage<Item>>;

  constructor(
    data: Item[],
    pagination: { next?: string; previous?: string },
    fetch: (cursor: PageCursor) => Promise<CursorPage<Item>>,
  ) {
    this.data = data;
    this.pagination = pagination;
    this.#fetch = fetch;
  }

  /** This page's items. */
  getPaginatedItems(): Item[] {
    return this.data;
  }

  /** Whether an older page follows. */
  hasNextPage(): boolean {
    return this.pagination.next !== undefined && this.data.length > 0;
  }

  /** Whether a newer page precedes. */
  hasPreviousPage(): boolean {
    return this.pagination.previous !== undefined;
  }

  /** The next (older) page. */
  getNextPage(): Promise<CursorPage<Item>> {
    if (!this.hasNextPage()) throw new Error("no next page");
    return this.#fetch({ after: this.pagination.next as string });
  }

  /** The previous (newer) page. */
  getPreviousPage(): Promise<CursorPage<Item>> {
    if (!this.hasPreviousPage()) throw new Error("no previous page");
    return this.#fetch({ before: this.pagination.previous as string });
  }

  /** This page and every next one. */
  async *iterPages(): AsyncGenerator<CursorPage<Item>, void, unknown> {
    yield this;
    let next = this.hasNextPage() ? await this.getNextPage() : undefined;
    while (next) {
      yield next;
      next = next.hasNextPage() ? await next.getNextPage() : undefined;
    }
  }

  /** Every item of this page and the next ones. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Item, void, unknown> {
    for await (const page of this.iterPages()) yield* page.data;
  }
}

/**
 * A page being fetched: `await` it for the first page, or iterate it with `for await` for every
 * token of every page (as Trigger.dev's `CursorPagePromise`).
 */
export class CursorPagePromise<Item> extends Promise<CursorPage<Item>> implements AsyncIterable<Item> {
  // Derived promises (`then`, `catch`) are plain promises.
  static override get [Symbol.species]() {
    return Promise;
  }

  /** Every item of every page, fetched as the loop goes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Item, void, unknown> {
    yield* await this;
  }
}

/** The tokens matching `params` as a page promise, each page fetched through `fetchPage`. */
export function tokenPages(
  params: ListWaitpointTokensQueryParams,
  fetchPage: PageFetcher,
): CursorPagePromise<WaitpointListTokenItem> {
  const fetch = async (cursor: PageCursor): Promise<CursorPage<WaitpointListTokenItem>> => {
    const page = await fetchPage(cursor);
    return new CursorPage(page.data.map(listItem), page.pagination, fetch);
  };
  const first: PageCursor = {};
  if (params.after !== undefined) first.after = params.after;
  if (params.before !== undefined) first.before = params.before;
  return new CursorPagePromise((resolve, reject) => {
    fetch(first).then(resolve, reject);
  });
}

/** The token calls of the API, as the server answers them. */
export const tokenApi = {
  create(client: ApiClient, body: CreateTokenBody): Promise<CreateWaitpointTokenResponse> {
    return client.call("POST", TOKENS, { body });
  },
  complete(client: ApiClient, id: string, data: unknown): Promise<{ success: true }> {
    return client.call("POST", `${TOKENS}/${segment(id)}/complete`, { body: { data } });
  },
  reject(client: ApiClient, id: string, body: RejectTokenBody): Promise<{ success: true }> {
    return client.call("POST", `${TOKENS}/${segment(id)}/reject`, { body });
  },
  heartbeat(client: ApiClient, id: string): Promise<ProlongWire> {
    return client.call("POST", `${TOKENS}/${segment(id)}/heartbeat`);
  },
  extend(client: ApiClient, id: string, body: { timeout: string }): Promise<ProlongWire> {
    return client.call("POST", `${TOKENS}/${segment(id)}/extend`, { body });
  },
  retrieve(client: ApiClient, id: string): Promise<TokenDetailWire> {
    return client.call("GET", `${TOKENS}/${segment(id)}`);
  },
  page(client: ApiClient, params: ListWaitpointTokensQueryParams, cursor: PageCursor): Promise<PageWire<TokenItemWire>> {
    return client.call("GET", TOKENS, { query: listQuery(params, cursor) });
  },
};
