/**
 * The worker channel (docs/runs.md, "The worker channel"): the operations of all a worker's runs
 * (journal reads, records, run tokens, waits, attempt ends) go to the server in batches,
 * `POST /api/v1/workers/batch`.
 *
 * At most {@link MAX_IN_FLIGHT} batches are in flight at a time. What runs produce meanwhile
 * waits in a queue and leaves together in the next batch, so a busy worker sends a few large
 * requests instead of many small ones; with two in flight, one leaves while the other waits on
 * the server's group commit. Nothing waits on a timer: the first operation of an idle worker
 * leaves on the next turn of the event loop, with whatever else that turn produced. The queue
 * needs no bound of its own: each run has at most one operation outstanding, and the worker's
 * slots bound the runs.
 *
 * Every operation is idempotent (journal positions and epochs), so what did not get through
 * goes again in a later batch, after a backoff: a whole batch that reached no working server (no
 * answer, a 5xx, 408 or 429), or one operation answered so.
 */

import { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";

import { type ApiClient, isTransient } from "./client.js";
import { ApiError } from "./errors.js";
import type { CreateTokenBody, JournalEntry, RunErrorBody, WaitFor } from "./wire.js";

/** The most operations one batch may carry (the server's limit). */
export const MAX_BATCH_OPERATIONS = 1_000;
/**
 * A batch stops growing at this many bytes of operations (the server takes 16 MiB); an
 * operation larger than that goes alone.
 */
export const MAX_BATCH_BYTES = 8 * 1024 * 1024;

/**
 * Batches sent and not yet answered, at most. Each run has at most one operation outstanding, so
 * batches in flight together hold different runs' operations.
 */
export const MAX_IN_FLIGHT = 2;

/** The first pause before sending again what did not get through. */
const FIRST_RETRY_MS = 50;
/** The longest pause. */
const MAX_RETRY_MS = 2_000;

/** One operation: its route's body, with `op` naming the route and `run` the run. */
export type Operation =
  | { op: "journal"; run: string }
  | { op: "record"; run: string; epoch: number; entry: JournalEntry }
  | { op: "createToken"; run: string; epoch: number; seq: number; options: CreateTokenBody }
  | { op: "wait"; run: string; epoch: number; seq: number; for: WaitFor }
  | { op: "complete"; run: string; epoch: number; output: unknown }
  | { op: "fail"; run: string; epoch: number; error: RunErrorBody; retryAfterMs?: number };

/** One operation's answer: the status and the body its route would have answered with. */
export interface Answer {
  status: number;
  body: unknown;
}

/** An operation waiting to be sent, as JSON, and where its answer goes. */
export interface Pending {
  json: string;
  bytes: number;
  resolve: (body: unknown) => void;
  reject: (error: unknown) => void;
}

/** Whether an answer (or a failed batch) means the server may not have done the work. */
function passing(error: unknown): boolean {
  return isTransient(error) || (error instanceof ApiError && (error.status === 408 || error.status === 429));
}

/** The channel of one worker. */
export class WorkerChannel {
  readonly #client: ApiClient;
  #ready: Pending[] = [];
  /** Whether a send is scheduled for the next turn of the event loop. */
  #scheduled = false;
  #inFlight = 0;
  /** Set after something did not get through: no batch leaves until the pause ends. */
  #paused = false;
  #backoff = FIRST_RETRY_MS;

  constructor(client: ApiClient) {
    this.#client = client;
  }

  /** Queues `operation` for the next batch; resolves with its answer's body, or rejects as its route would. */
  call<T>(operation: Operation): Promise<T> {
    let json: string;
    try {
      json = JSON.stringify(operation);
    } catch (error) {
      return Promise.reject(new Error(`the ${operation.op} of ${operation.run} does not encode as JSON: ${String(error)}`));
    }
    return new Promise<T>((resolve, reject) => {
      this.#ready.push({ json, bytes: Buffer.byteLength(json), resolve: resolve as (body: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#pump();
        });
      }
    });
  }

  /** Sends batches of what waits, up to {@link MAX_IN_FLIGHT} at once, unless paused. */
  #pump(): void {
    while (!this.#paused && this.#inFlight < MAX_IN_FLIGHT && this.#ready.length > 0) {
      const batch = takeBatch(this.#ready);
      this.#inFlight += 1;
      void this.#send(batch).then((again) => {
        this.#inFlight -= 1;
        if (again.length === 0) {
          this.#backoff = FIRST_RETRY_MS;
        } else {
          this.#ready.push(...again);
          this.#pause();
        }
        this.#pump();
      });
    }
  }

  /** Holds every batch back for the current backoff, which doubles for the next pause. */
  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    const pause = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, MAX_RETRY_MS);
    void sleep(pause).then(() => {
      this.#paused = false;
      this.#pump();
    });
  }

  /** Sends `batch` and settles what was answered for good; returns what is to go again. */
  async #send(batch: Pending[]): Promise<Pending[]> {
    let answers: unknown;
    try {
      const body = `{"operations":[${batch.map((pending) => pending.json).join(",")}]}`;
      const response = await this.#client.call<{ answers?: unknown }>("POST", "api/v1/workers/batch", {
        encodedBody: body,
      });
      answers = response.answers;
    } catch (error) {
      if (passing(error)) return batch;
      for (const pending of batch) pending.reject(error);
      return [];
    }
    if (!Array.isArray(answers) || answers.length !== batch.length) {
      const count = Array.isArray(answers) ? `${answers.length} answers` : "no list of answers";
      const error = new Error(`the server sent ${count} to a batch of ${batch.length} operations`);
      for (const pending of batch) pending.reject(error);
      return [];
    }
    const again: Pending[] = [];
    batch.forEach((pending, index) => {
      const answer: unknown = answers[index];
      if (!isAnswer(answer)) {
        pending.reject(new Error(`the server's answer to an operation is not {"status", "body"}: ${JSON.stringify(answer)}`));
        return;
      }
      if (answer.status >= 200 && answer.status < 300) {
        pending.resolve(answer.body);
        return;
      }
      const error = answerError(answer);
      if (passing(error)) again.push(pending);
      else pending.reject(error);
    });
    return again;
  }
}

function isAnswer(value: unknown): value is Answer {
  return typeof value === "object" && value !== null && typeof (value as { status?: unknown }).status === "number";
}

/** The error an operation's answer means, as its route's call would have thrown it. */
export function answerError(answer: Answer): ApiError {
  const body = answer.body as { error?: unknown; code?: unknown } | null;
  const message = typeof body?.error === "string" ? body.error : JSON.stringify(answer.body);
  const code = typeof body?.code === "string" ? body.code : undefined;
  return new ApiError(answer.status, message, code);
}

/**
 * The next batch, taken from the front of `ready`: up to {@link MAX_BATCH_OPERATIONS}
 * operations and {@link MAX_BATCH_BYTES} (but at least one operation).
 */
export function takeBatch(ready: Pending[]): Pending[] {
  let count = 0;
  let bytes = 0;
  for (const pending of ready) {
    if (count === MAX_BATCH_OPERATIONS || (count > 0 && bytes + pending.bytes > MAX_BATCH_BYTES)) break;
    bytes += pending.bytes;
    count += 1;
  }
  return ready.splice(0, count);
}
