/**
 * The HTTP client: where the server is, with which key, and how a call is sent. A call is sent
 * once; the worker channel (`channel.ts`) sends its batches again while no server answers.
 */

import { ApiError, refuseUnsupported } from "./errors.js";

/** Where a local `waitpoint serve` listens. */
export const DEFAULT_API_URL = "http://127.0.0.1:3030";

/** How an SDK outside a worker reaches the server (Trigger.dev's `configure`). */
export interface ClientConfig {
  /** The server's URL; else `WAITPOINT_API_URL`, `TRIGGER_API_URL`, then `http://127.0.0.1:3030`. */
  baseURL?: string;
  /** The environment's secret key; else `WAITPOINT_SECRET_KEY`, then `TRIGGER_SECRET_KEY`. */
  secretKey?: string;
}

let configured: ClientConfig = {};

/**
 * Sets the server and key the SDK uses, as Trigger.dev's `configure` does. Without it, the
 * environment variables are read at each call.
 */
export function configure(config: ClientConfig): void {
  refuseUnsupported("configure()", config, ["baseURL", "secretKey"]);
  configured = { ...config };
}

function environment(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** The client `overrides`, then `configure`, then the environment describe. */
export function defaultClient(overrides: ClientConfig = {}): ApiClient {
  const baseURL =
    overrides.baseURL ??
    configured.baseURL ??
    environment("WAITPOINT_API_URL") ??
    environment("TRIGGER_API_URL") ??
    DEFAULT_API_URL;
  const secretKey =
    overrides.secretKey ??
    configured.secretKey ??
    environment("WAITPOINT_SECRET_KEY") ??
    environment("TRIGGER_SECRET_KEY");
  if (secretKey === undefined) {
    throw new Error(
      "no secret key: set WAITPOINT_SECRET_KEY (or TRIGGER_SECRET_KEY) to the key `waitpoint serve` printed, or call configure({ secretKey })",
    );
  }
  return new ApiClient(baseURL, secretKey);
}

/** How a call is sent. */
export interface CallOptions {
  /** A JSON body. */
  body?: unknown;
  /** A body already encoded as JSON (instead of `body`). */
  encodedBody?: string;
  /** Query parameters. */
  query?: URLSearchParams;
  /** Give up on an answer after this long (default 60 s). */
  timeoutMs?: number;
  /** Abandons the call. */
  signal?: AbortSignal;
}

/** How long a call waits for its answer by default. */
const DEFAULT_TIMEOUT_MS = 60_000;

/** Whether `error` means the call may not have reached a working server. */
export function isTransient(error: unknown): boolean {
  if (error instanceof ApiError) return error.status >= 500;
  // fetch fails with a TypeError when it reaches no server, and a timeout is a TimeoutError.
  return error instanceof TypeError || (error instanceof Error && error.name === "TimeoutError");
}

/** A client of one server with one key. */
export class ApiClient {
  /** The server's URL, without a trailing slash. */
  readonly baseURL: string;
  readonly #credential: string;

  constructor(baseURL: string, credential: string) {
    if (credential.trim() === "") throw new Error("no secret key: pass one (or set WAITPOINT_SECRET_KEY)");
    this.baseURL = new URL(baseURL).toString().replace(/\/+$/, "");
    this.#credential = credential.trim();
  }

  /** Sends one call and decodes its JSON answer. */
  async call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const url = new URL(`${this.baseURL}/${path}`);
    if (options.query) url.search = options.query.toString();
    const headers: Record<string, string> = { authorization: `Bearer ${this.#credential}` };
    const body = options.encodedBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    if (body !== undefined) headers["content-type"] = "application/json";
    // A plain controller and timer: `AbortSignal.timeout` and `AbortSignal.any` cost a
    // transferable signal per call, which shows at thousands of calls a second.
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError"));
    }, timeoutMs);
    const abandon = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) abandon();
    options.signal?.addEventListener("abort", abandon, { once: true });
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, { method, headers, body: body ?? null, signal: controller.signal });
      text = await response.text();
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", abandon);
    }
    if (!response.ok) {
      const parsed = parseJson(text) as { error?: unknown; code?: unknown } | undefined;
      const message = typeof parsed?.error === "string" ? parsed.error : text;
      const code = typeof parsed?.code === "string" ? parsed.code : undefined;
      throw new ApiError(response.status, message, code);
    }
    return JSON.parse(text) as T;
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An id as a path segment: ids are letters, digits, `_` and `-`; anything else is refused here. */
export function segment(id: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new Error(`invalid id ${JSON.stringify(id)}`);
  return id;
}
