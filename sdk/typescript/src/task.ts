/**
 * Tasks, as Trigger.dev v4 declares them (`task({ id, run, retry, queue })`), and triggering
 * them (`tasks.trigger`, `myTask.trigger`). Options waitpoint does not have are refused when the
 * task is declared, never silently ignored.
 */

import { defaultClient, segment } from "./client.js";
import { UnsupportedOptionError, refuseUnsupported } from "./errors.js";
import type { RunDetailWire, RunErrorBody, RunStatus, TriggerOptionsWire, TriggerResponse } from "./wire.js";

/** What a run's code knows about itself (a part of Trigger.dev's `ctx`). */
export interface Context {
  task: { id: string };
  run: { id: string };
  attempt: { number: number };
}

/** The second argument of a task's `run`. */
export interface RunFnParams {
  /** The run, its task and its attempt. */
  ctx: Context;
  /** Aborted when this worker loses the run (canceled, given to another worker) or stops. */
  signal: AbortSignal;
}

/**
 * The delays between attempts of a run whose code throws, as in Trigger.dev:
 * `minTimeoutInMs × factor^(attempt − 1)` (times a random 1–2 with `randomize`), at most
 * `maxTimeoutInMs`.
 */
export interface RetryOptions {
  /** Attempts at most (the run's own `maxAttempts`, set when triggered, caps it too; default 3). */
  maxAttempts?: number;
  /** Growth of the delay per attempt (default 2). */
  factor?: number;
  /** The delay after the first failure (default 1 s). */
  minTimeoutInMs?: number;
  /** The longest delay (default 60 s). */
  maxTimeoutInMs?: number;
  /** Multiply each delay by a random factor between 1 and 2 (default false). */
  randomize?: boolean;
}

/** How many runs of the task execute at once in one worker (waiting runs do not count). */
export interface TaskQueueOptions {
  concurrencyLimit?: number;
}

/** The options of `task()`: the ones of Trigger.dev v4 that waitpoint has. */
export interface TaskOptions<TIdentifier extends string, TPayload, TOutput> {
  /** The task's id: letters, digits, `-`, `_`, `.`, `:` and `/`, at most 128. */
  id: TIdentifier;
  /** What the task is for (not used by waitpoint). */
  description?: string;
  /** Delays between attempts, and their number. */
  retry?: RetryOptions;
  /** At most this many runs at once per worker. */
  queue?: TaskQueueOptions;
  /**
   * The run's code. Its output is stored as JSON. Code between `wait.*` calls runs again when
   * the run resumes by replay: side effects belong in `wait.step`.
   */
  run: (payload: TPayload, params: RunFnParams) => Promise<TOutput>;
}

/** The options of a trigger: the ones of Trigger.dev v4 that waitpoint has. */
export interface TriggerOptions {
  /** Returns the same run for the same key (per task) while the key is active. */
  idempotencyKey?: string;
  /** How long the key stays active (`"1h"` when absent). */
  idempotencyKeyTTL?: string;
  /** Attempts before the run fails (1 to 100; the server's default, 3, when absent). */
  maxAttempts?: number;
  /** Start no earlier than after this duration (`"10m"`) or at this date. */
  delay?: string | Date;
  /** Up to 10 tags. */
  tags?: string | string[];
}

/** A triggered run. */
export interface RunHandle<TIdentifier extends string, TPayload, TOutput> {
  /** `run_…`. */
  id: string;
  taskIdentifier: TIdentifier;
  /** True when an active idempotency key returned an existing run. */
  isCached: boolean;
  /** Phantom fields carrying the types, as Trigger.dev's handles do. */
  readonly __payload?: TPayload;
  readonly __output?: TOutput;
}

/** A declared task: its id, its options, and a typed `trigger`. */
export interface Task<TIdentifier extends string, TPayload = void, TOutput = unknown> {
  readonly id: TIdentifier;
  readonly description: string | undefined;
  /** Triggers a run of this task. */
  trigger(payload: TPayload, options?: TriggerOptions): Promise<RunHandle<TIdentifier, TPayload, TOutput>>;
  /** The options it was declared with (what the worker runs). */
  readonly options: TaskOptions<TIdentifier, TPayload, TOutput>;
}

/** Any task. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- payload and output vary per task; this is the erased type.
export type AnyTask = Task<string, any, any>;

/** The payload type of a task. */
export type TaskPayload<T extends AnyTask> = T extends Task<string, infer P, infer _O> ? P : never;
/** The output type of a task. */
export type TaskOutput<T extends AnyTask> = T extends Task<string, infer _P, infer O> ? O : never;
/** The id type of a task. */
export type TaskIdentifier<T extends AnyTask> = T extends Task<infer I, infer _P, infer _O> ? I : never;

const TASK_OPTIONS = ["id", "description", "retry", "queue", "run"] as const;
const RETRY_OPTIONS = ["maxAttempts", "factor", "minTimeoutInMs", "maxTimeoutInMs", "randomize"] as const;
const TASK_ID = /^[A-Za-z0-9\-_.:/]{1,128}$/;

/** Every task declared in this process, in order: what a worker runs unless told otherwise. */
const declared: AnyTask[] = [];

/** The tasks declared with `task()` so far. */
export function declaredTasks(): readonly AnyTask[] {
  return declared;
}

function positiveNumber(what: string, value: number | undefined, integer: boolean): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${what} must be a positive ${integer ? "integer" : "number"}, got ${value}`);
  }
}

/**
 * Declares a task, as Trigger.dev's `task()`: the worker runs it (every task declared in the
 * process, unless a worker is given its tasks). Throws at once on an option waitpoint does not
 * have.
 */
export function task<TIdentifier extends string, TPayload = void, TOutput = unknown>(
  options: TaskOptions<TIdentifier, TPayload, TOutput>,
): Task<TIdentifier, TPayload, TOutput> {
  const where = `task(${JSON.stringify(options.id)})`;
  refuseUnsupported(where, options, TASK_OPTIONS);
  if (typeof options.id !== "string" || !TASK_ID.test(options.id)) {
    throw new RangeError(
      `${where}: the id must be 1 to 128 letters, digits, '-', '_', '.', ':' or '/'`,
    );
  }
  if (typeof options.run !== "function") throw new TypeError(`${where}: \`run\` must be a function`);
  if (options.retry) {
    refuseUnsupported(`${where} retry`, options.retry, RETRY_OPTIONS);
    positiveNumber(`${where} retry.maxAttempts`, options.retry.maxAttempts, true);
    positiveNumber(`${where} retry.factor`, options.retry.factor, false);
    positiveNumber(`${where} retry.minTimeoutInMs`, options.retry.minTimeoutInMs, false);
    positiveNumber(`${where} retry.maxTimeoutInMs`, options.retry.maxTimeoutInMs, false);
  }
  if (options.queue) {
    refuseUnsupported(
      `${where} queue`,
      options.queue,
      ["concurrencyLimit"],
      " (a queue is per task: named queues shared by tasks do not exist)",
    );
    positiveNumber(`${where} queue.concurrencyLimit`, options.queue.concurrencyLimit, true);
  }
  const declaredTask: Task<TIdentifier, TPayload, TOutput> = {
    id: options.id,
    description: options.description,
    options,
    trigger: (payload, triggerOptions) => trigger(options.id, payload, triggerOptions),
  };
  declared.push(declaredTask);
  return declaredTask;
}

/**
 * The delay before the attempt after `attempt` (1-based), or `undefined` when the task's
 * `retry.maxAttempts` allows no further attempt.
 */
export function retryDelay(retry: RetryOptions | undefined, attempt: number, random = Math.random): number | undefined {
  const { maxAttempts = 3, factor = 2, minTimeoutInMs = 1_000, maxTimeoutInMs = 60_000, randomize = false } =
    retry ?? {};
  if (attempt >= maxAttempts) return undefined;
  const spread = randomize ? random() + 1 : 1;
  return Math.round(Math.min(maxTimeoutInMs, spread * minTimeoutInMs * factor ** (attempt - 1)));
}

function triggerOptions(options: TriggerOptions): TriggerOptionsWire {
  refuseUnsupported("tasks.trigger()", options, ["idempotencyKey", "idempotencyKeyTTL", "maxAttempts", "delay", "tags"]);
  if (options.idempotencyKey !== undefined && typeof options.idempotencyKey !== "string") {
    throw new UnsupportedOptionError("tasks.trigger(): `idempotencyKey` must be a string with waitpoint");
  }
  const wire: TriggerOptionsWire = {};
  if (options.idempotencyKey !== undefined) wire.idempotencyKey = options.idempotencyKey;
  if (options.idempotencyKeyTTL !== undefined) wire.idempotencyKeyTTL = options.idempotencyKeyTTL;
  if (options.maxAttempts !== undefined) wire.maxAttempts = options.maxAttempts;
  if (options.delay !== undefined) {
    wire.delay = options.delay instanceof Date ? options.delay.toISOString() : options.delay;
  }
  if (options.tags !== undefined) wire.tags = typeof options.tags === "string" ? [options.tags] : options.tags;
  return wire;
}

/** Triggers a run of the task `id` with `payload` (from anywhere: a backend, a script, a run). */
async function trigger<TIdentifier extends string, TPayload, TOutput>(
  id: TIdentifier,
  payload: TPayload,
  options?: TriggerOptions,
): Promise<RunHandle<TIdentifier, TPayload, TOutput>> {
  const body: { payload: unknown; options?: TriggerOptionsWire } = { payload: payload === undefined ? null : payload };
  if (options !== undefined) body.options = triggerOptions(options);
  const answer = await defaultClient().call<TriggerResponse>(
    "POST",
    `api/v1/tasks/${encodeURIComponent(id)}/trigger`,
    { body },
  );
  return { id: answer.id, taskIdentifier: id, isCached: answer.isCached };
}

/** Triggering tasks by id (Trigger.dev's `tasks`). */
export const tasks = {
  /** Triggers a run of the task `id`; typed when given the task's type: `tasks.trigger<typeof myTask>(…)`. */
  trigger<T extends AnyTask>(
    id: TaskIdentifier<T>,
    payload: TaskPayload<T>,
    options?: TriggerOptions,
  ): Promise<RunHandle<TaskIdentifier<T>, TaskPayload<T>, TaskOutput<T>>> {
    return trigger(id, payload, options);
  },
};

/** A run as waitpoint reports it. */
export interface RetrievedRun<TOutput = unknown> {
  id: string;
  taskIdentifier: string;
  status: RunStatus;
  payload?: unknown;
  /** Once `COMPLETED`. */
  output?: TOutput;
  /** Once `FAILED`: the last attempt's error. */
  error?: RunErrorBody;
  attempt: number;
  maxAttempts: number;
  tags: string[];
  /** While `WAITING`: the waitpoints it waits on. */
  waitingOn: { id: string; type: string; timeoutAt?: Date }[];
  createdAt: Date;
  updatedAt: Date;
  finishedAt?: Date;
  /** True once `COMPLETED`, `FAILED` or `CANCELED`. */
  isFinished: boolean;
  /** Such as that no worker serves its task. */
  hint?: string;
}

/** Runs (a part of Trigger.dev's `runs`). */
export const runs = {
  /** A run with its status, output or error, and what it waits on. */
  async retrieve<TOutput = unknown>(id: string | { id: string }): Promise<RetrievedRun<TOutput>> {
    const runId = typeof id === "string" ? id : id.id;
    const wire = await defaultClient().call<RunDetailWire>("GET", `api/v1/runs/${segment(runId)}`);
    const run: RetrievedRun<TOutput> = {
      id: wire.id,
      taskIdentifier: wire.taskId,
      status: wire.status,
      attempt: wire.attempt,
      maxAttempts: wire.maxAttempts,
      tags: wire.tags,
      waitingOn: wire.waitingOn.map(({ id: waitpointId, type, timeoutAt }) =>
        timeoutAt === undefined ? { id: waitpointId, type } : { id: waitpointId, type, timeoutAt: new Date(timeoutAt) },
      ),
      createdAt: new Date(wire.createdAt),
      updatedAt: new Date(wire.updatedAt),
      isFinished: ["COMPLETED", "FAILED", "CANCELED"].includes(wire.status),
    };
    if ("payload" in wire) run.payload = wire.payload;
    if ("output" in wire) run.output = wire.output as TOutput;
    if (wire.error !== undefined) run.error = wire.error;
    if (wire.finishedAt !== undefined) run.finishedAt = new Date(wire.finishedAt);
    if (wire.hint !== undefined) run.hint = wire.hint;
    return run;
  },
  /** Cancels a run that has not finished (final: a waitpoint that finishes later does not resume it). */
  async cancel(id: string | { id: string }): Promise<void> {
    const runId = typeof id === "string" ? id : id.id;
    await defaultClient().call("POST", `api/v1/runs/${segment(runId)}/cancel`);
  },
};
