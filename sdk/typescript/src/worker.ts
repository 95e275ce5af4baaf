/**
 * The worker: takes runs of its tasks from the server and executes them.
 *
 * One loop polls for as many runs as there are free slots. A run that waits on a pending
 * waitpoint is suspended: it gives back its slots and stays in memory, and when the waitpoint
 * finishes the server hands it straight back to this worker, which continues it where it
 * stopped. A run not in memory any more (evicted, another worker's, or this process restarted)
 * replays its journal instead. Polls carry a session made at start, so a restarted process with
 * the same instance name takes its runs back at once.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { inspect } from "node:util";

import { type ApiClient, defaultClient, isTransient } from "./client.js";
import {
  AbortTaskRunError,
  ApiError,
  KeyRefusedError,
  RunMovedOnError,
  UnsupportedOptionError,
  WaitpointTimeoutError,
  WorkerReplacedError,
} from "./errors.js";
import { timeOrderedId } from "./ids.js";
import { RunExecution, runScope } from "./journal.js";
import { type Held, Parking, Permit, Slots } from "./parking.js";
import { type WorkerProtocol, workerProtocol } from "./protocol.js";
import { type AnyTask, declaredTasks, retryDelay } from "./task.js";
import type { ClaimedRun, PollRequest, RunErrorBody, TaskSlots } from "./wire.js";

/** How long the server may hold a poll when there is nothing to take. */
const POLL_WAIT_MS = 10_000;
/** The pause after a poll that failed (the server is down or restarting). */
const POLL_RETRY_MS = 500;
/** While polls keep failing, the pause between two warnings. */
const WARN_EVERY_MS = 30_000;
/** The longest instance name. */
const MAX_INSTANCE_LEN = 64;

/** A log line's level. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Settings of a worker; all optional. */
export interface WorkerOptions {
  /** The tasks it runs; every task declared with `task()` in this process when absent. */
  tasks?: readonly AnyTask[];
  /** The server's URL; as `configure` and the environment say when absent. */
  baseURL?: string;
  /** The environment's secret key; as `configure` and the environment say when absent. */
  secretKey?: string;
  /**
   * This process's name among the workers, such as `billing-1`: the worker id is then
   * `worker_<instance>`, the same across restarts, so a restarted process takes back at once the
   * runs it held when it died (without a name, a killed worker's runs move on once the server
   * presumes it gone: `--worker-timeout`, 30 s by default). Lowercase letters, digits and `-`, at
   * most 64; one name per process. `WAITPOINT_WORKER_INSTANCE` when absent.
   */
  instance?: string;
  /** Runs whose code executes at once; suspended runs do not count, nor runs whose code returned while their outcome is reported (default 100). */
  concurrency?: number;
  /** Suspended runs kept in memory; the oldest beyond are dropped and resume by replay (default 10,000). */
  maxSuspended?: number;
  /** On stop, how long executing runs get to finish or suspend, and report how they ended, before they are handed back (default 30 s). */
  shutdownGraceMs?: number;
  /** The clock `wait.now()` reads, in milliseconds (default `Date.now`). */
  clock?: () => number;
  /** Where the worker's own log lines go (default: stderr, without debug lines). */
  log?: (level: LogLevel, message: string) => void;
}

/** Info, warnings and errors to stderr (debug lines only where a `log` option asks for them). */
function stderrLog(level: LogLevel, message: string): void {
  if (level === "debug") return;
  process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} waitpoint worker: ${message}\n`);
}

function positiveInteger(what: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, got ${value}`);
  return value;
}

/** The worker id `instance` names, or a new one. */
function workerId(instance: string | undefined, now: number): string {
  if (instance === undefined) return `worker_${timeOrderedId(now)}`;
  if (!new RegExp(`^[a-z0-9-]{1,${MAX_INSTANCE_LEN}}$`).test(instance)) {
    throw new RangeError(
      `invalid worker instance name ${JSON.stringify(instance)}: use 1 to ${MAX_INSTANCE_LEN} lowercase letters, ` +
        'digits and \'-\', one name per process (such as "billing-1")',
    );
  }
  return `worker_${instance}`;
}

/** Errors a retry cannot fix: the run fails at once (as it does on non-determinism and parallel operations). */
function isFinal(error: unknown): boolean {
  return (
    error instanceof AbortTaskRunError ||
    error instanceof WaitpointTimeoutError ||
    error instanceof UnsupportedOptionError
  );
}

function errorBody(error: unknown): RunErrorBody {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: "Error", message: typeof error === "string" ? error : inspect(error) };
}

type Outcome = { ok: true; output: unknown } | { ok: false; error: unknown };

/**
 * A worker: a set of tasks, run against a server.
 *
 * ```ts
 * const worker = new Worker({ instance: "billing-1" });
 * await worker.run(AbortSignal.timeout(60_000));
 * ```
 */
export class Worker {
  /** This worker's id: `worker_<instance>`, or a new one for each process. */
  readonly id: string;
  /** This process's session: made at start, later starts make later ones. */
  readonly session: string;
  readonly #client: ApiClient;
  readonly #protocol: WorkerProtocol;
  readonly #tasks = new Map<string, AnyTask>();
  readonly #slots: Slots;
  readonly #taskSlots = new Map<string, Slots>();
  readonly #parking: Parking;
  readonly #shutdownGraceMs: number;
  readonly #clock: () => number;
  readonly #log: (level: LogLevel, message: string) => void;
  /** Abandons the poll in flight when a slot frees (set while the poll asks for nothing). */
  #onSlotsFreed: (() => void) | undefined;
  /** Waiting for every slot to be free (on stop). */
  #idleWaiters: (() => void)[] = [];

  constructor(options: WorkerOptions = {}) {
    const tasks = options.tasks ?? declaredTasks();
    for (const task of tasks) {
      if (this.#tasks.has(task.id)) throw new Error(`two tasks share the id ${JSON.stringify(task.id)}`);
      this.#tasks.set(task.id, task);
    }
    if (this.#tasks.size === 0) {
      throw new Error("a worker needs at least one task: declare tasks with task() before making it, or pass `tasks`");
    }
    this.#clock = options.clock ?? Date.now;
    const instance = options.instance ?? (process.env.WAITPOINT_WORKER_INSTANCE?.trim() || undefined);
    this.id = workerId(instance, this.#clock());
    this.session = timeOrderedId(this.#clock());
    this.#client = defaultClient({
      ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
      ...(options.secretKey === undefined ? {} : { secretKey: options.secretKey }),
    });
    this.#protocol = workerProtocol(this.#client);
    this.#slots = new Slots(positiveInteger("concurrency", options.concurrency ?? 100));
    for (const task of this.#tasks.values()) {
      const limit = task.options.queue?.concurrencyLimit;
      if (limit !== undefined) this.#taskSlots.set(task.id, new Slots(limit));
    }
    this.#parking = new Parking(positiveInteger("maxSuspended", options.maxSuspended ?? 10_000), () =>
      this.#slotsFreed(),
    );
    this.#shutdownGraceMs = options.shutdownGraceMs ?? 30_000;
    this.#log = options.log ?? stderrLog;
  }

  /**
   * Runs until `signal` aborts, then stops taking runs, lets executing runs finish or suspend and
   * report how they ended (for `shutdownGraceMs`), drops the rest and hands them back to the
   * server, and resolves.
   *
   * Rejects at once when the server refuses the worker for good: the key is wrong
   * ({@link KeyRefusedError}), a newer process took this instance name over
   * ({@link WorkerReplacedError}), or a poll was refused otherwise ({@link ApiError}). An
   * unreachable or failing server is not such an error: the worker warns and keeps polling.
   */
  async run(signal?: AbortSignal): Promise<void> {
    const tasks = [...this.#tasks.keys()].sort().join(", ");
    this.#log("info", `${this.id} started at ${this.#client.baseURL}: tasks ${tasks}, ${this.#slots.size} slots`);
    const stop = signal ?? new AbortController().signal;
    try {
      await this.#pollLoop(stop);
    } catch (error) {
      this.#log("error", `${this.id} stopped: ${error instanceof Error ? error.message : String(error)}`);
      this.#parking.dropAll(new RunMovedOnError("the worker stopped"));
      throw error;
    }
    this.#log("info", `${this.id} stopping`);
    if (!(await this.#idle(this.#shutdownGraceMs))) {
      this.#log("warn", "runs still executing after the grace period are stopped and resume elsewhere");
    }
    this.#parking.dropAll(new RunMovedOnError("the worker stopped"));
    // Leaving with nothing held gives back at once every run the server counts as this worker's,
    // and sends its suspended runs elsewhere when they resume.
    const leaving: PollRequest = {
      tasks: this.#freeSlots(false),
      waitMs: 0,
      holding: [],
      leaving: true,
      session: this.session,
    };
    try {
      await this.#protocol.poll(this.id, leaving);
    } catch (error) {
      this.#log("warn", `could not hand runs back (${String(error)}); they resume elsewhere once this worker times out`);
    }
  }

  /** The tasks and their free slots now (all 0 without `withSlots`). */
  #freeSlots(withSlots: boolean): TaskSlots[] {
    return [...this.#tasks.keys()].map((id) => {
      const free = Math.min(this.#slots.free, this.#taskSlots.get(id)?.free ?? Number.POSITIVE_INFINITY);
      return { id, slots: withSlots ? free : 0 };
    });
  }

  /** Polls until `stop` aborts; throws when a poll is refused for good. */
  async #pollLoop(stop: AbortSignal): Promise<void> {
    let outage: { since: number; warnedAt: number; failures: number } | undefined;
    while (!stop.aborted) {
      if (this.#slots.free > 0) for (const claimed of this.#parking.takeDeferred()) this.#dispatch(claimed);
      const request: PollRequest = {
        tasks: this.#freeSlots(true),
        waitMs: POLL_WAIT_MS,
        holding: this.#parking.holding(),
        session: this.session,
      };
      // A poll with free slots returns as soon as there is a run to take. One without (a
      // heartbeat), or one while resumed runs wait for a slot, is abandoned when a slot frees,
      // to ask again with it; what it took is not lost: the next poll, not counting it as
      // held, gives it back.
      const abandon = new AbortController();
      const onStop = () => abandon.abort();
      stop.addEventListener("abort", onStop, { once: true });
      if (request.tasks.every((task) => task.slots === 0) || this.#parking.hasDeferred) {
        this.#onSlotsFreed = () => abandon.abort();
      }
      try {
        const answer = await this.#protocol.poll(this.id, request, abandon.signal);
        if (outage) {
          const seconds = Math.round((this.#clock() - outage.since) / 1000);
          this.#log("info", `the server answers again, after ${seconds}s and ${outage.failures} failed polls`);
          outage = undefined;
        }
        for (const claimed of answer.runs) this.#dispatch(claimed);
      } catch (error) {
        if (abandon.signal.aborted) continue;
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          throw new KeyRefusedError(this.#client.baseURL, error.status, error.message);
        }
        if (error instanceof ApiError && error.status === 409 && error.code === "worker_replaced") {
          throw new WorkerReplacedError(this.id);
        }
        if (!isTransient(error) && !(error instanceof SyntaxError)) throw error;
        const now = this.#clock();
        if (!outage) {
          outage = { since: now, warnedAt: now, failures: 1 };
          this.#log("warn", `cannot poll ${this.#client.baseURL} (${String(error)}); retrying`);
        } else {
          outage.failures += 1;
          if (now - outage.warnedAt >= WARN_EVERY_MS) {
            outage.warnedAt = now;
            const seconds = Math.round((now - outage.since) / 1000);
            this.#log("warn", `still cannot poll ${this.#client.baseURL} after ${seconds}s (${String(error)}); retrying`);
          }
        }
        await sleep(POLL_RETRY_MS, undefined, { signal: stop }).catch(() => {});
      } finally {
        this.#onSlotsFreed = undefined;
        stop.removeEventListener("abort", onStop);
      }
    }
  }

  #slotsFreed(): void {
    this.#onSlotsFreed?.();
    if (this.#isIdle) {
      for (const waiter of this.#idleWaiters.splice(0)) waiter();
    }
  }

  /** Whether no run's code executes and no run's outcome is being reported. */
  get #isIdle(): boolean {
    return this.#slots.free === this.#slots.size && !this.#parking.reporting;
  }

  /** Resolves true once no run executes or reports, or false after `ms`. */
  async #idle(ms: number): Promise<boolean> {
    if (this.#isIdle) return true;
    const idle = new Promise<boolean>((resolve) => this.#idleWaiters.push(() => resolve(true)));
    const timeout = sleep(ms, false, { ref: false });
    return Promise.race([idle, timeout]);
  }

  /** A worker slot and, if the task has a limit, one of the task's; none if one is not free. */
  #acquire(taskId: string): Permit | undefined {
    const taskSlots = this.#taskSlots.get(taskId);
    if (this.#slots.free === 0 || taskSlots?.free === 0) return undefined;
    this.#slots.take();
    taskSlots?.take();
    return new Permit(taskSlots ? [this.#slots, taskSlots] : [this.#slots]);
  }

  /**
   * Starts (or resumes) a run the server handed over. A resumed run can arrive when every slot
   * is taken (the server hands it back to the worker that suspended it): it then waits for a
   * slot, or, when as many runs as there are slots wait already, is left for the next poll
   * (which does not count it as held) to give back.
   */
  #dispatch(claimed: ClaimedRun): void {
    if (this.#parking.superseded(claimed.id, claimed.epoch)) return;
    const permit = this.#acquire(claimed.taskId);
    if (!permit) {
      if (!this.#parking.defer(claimed, this.#slots.size)) {
        this.#log("debug", `no free slot for ${claimed.id}; handing it back`);
      }
      return;
    }
    if (claimed.resumed) {
      const deliver = this.#parking.takeResume(claimed.id, claimed.resumed.seq, claimed.epoch);
      if (deliver) {
        deliver({ result: claimed.resumed.result ?? null, epoch: claimed.epoch, permit });
        return;
      }
    }
    const held = this.#parking.begin(claimed.id, claimed.epoch, permit);
    void this.#execute(claimed, held);
  }

  /** Executes a run from its start, replaying its journal if it has one, and reports how it ended. */
  async #execute(claimed: ClaimedRun, held: Held): Promise<void> {
    let journal;
    try {
      journal = claimed.journalLength > 0 ? await this.#protocol.journal(claimed.id) : [];
    } catch (error) {
      this.#log("warn", `could not read the journal of ${claimed.id} (${String(error)}); it resumes elsewhere`);
      this.#parking.end(claimed.id, held);
      return;
    }
    const run = new RunExecution(
      { runId: claimed.id, taskId: claimed.taskId, attempt: claimed.attempt, epoch: claimed.epoch, journal },
      {
        protocol: this.#protocol,
        park: (seq) => this.#parking.park(claimed.id, held, seq),
        now: this.#clock,
      },
    );
    held.run = run;
    const task = this.#tasks.get(claimed.taskId);
    let outcome: Outcome;
    if (!task) {
      const error = new AbortTaskRunError(`this worker has no task ${JSON.stringify(claimed.taskId)}`);
      error.name = "TaskNotFound";
      outcome = { ok: false, error };
    } else {
      const ctx = { task: { id: claimed.taskId }, run: { id: claimed.id }, attempt: { number: claimed.attempt } };
      try {
        const output: unknown = await runScope.run(run, () =>
          task.options.run(claimed.payload, { ctx, signal: run.abort.signal }),
        );
        outcome = { ok: true, output };
      } catch (error) {
        outcome = { ok: false, error };
      }
    }
    // The code returned: its slots go to other runs while the outcome is reported. The run stays
    // held (polls list it) until the report is answered, and a stopping worker waits for that.
    this.#parking.returned(held);
    try {
      await this.#report(claimed, run, task, outcome);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 409)) {
        this.#log("warn", `could not report the attempt of ${claimed.id} (${String(error)}); it resumes elsewhere`);
      }
    }
    this.#parking.end(claimed.id, held);
  }

  /** Tells the server how the attempt ended. */
  async #report(claimed: ClaimedRun, run: RunExecution, task: AnyTask | undefined, outcome: Outcome): Promise<void> {
    const poison = run.poison;
    if (poison instanceof RunMovedOnError) {
      this.#log("info", `${claimed.id} moved on (${poison.message}); dropping it`);
      return;
    }
    if (poison) return this.#protocol.failAttempt(run.runId, run.epoch, errorBody(poison), undefined);
    if (outcome.ok && run.unreplayed) {
      const message = `the run's code returned before replaying its journal (${run.replayedLength} entries)`;
      return this.#protocol.failAttempt(run.runId, run.epoch, { name: "NonDeterminism", message }, undefined);
    }
    if (outcome.ok) {
      const output = outcome.output === undefined ? null : outcome.output;
      try {
        JSON.stringify(output);
      } catch (error) {
        const message = `the output does not encode as JSON: ${String(error)}`;
        return this.#protocol.failAttempt(run.runId, run.epoch, { name: "InvalidOutput", message }, undefined);
      }
      return this.#protocol.completeAttempt(run.runId, run.epoch, output);
    }
    const retryAfter =
      isFinal(outcome.error) || claimed.attempt >= claimed.maxAttempts
        ? undefined
        : retryDelay(task?.options.retry, claimed.attempt);
    return this.#protocol.failAttempt(run.runId, run.epoch, errorBody(outcome.error), retryAfter);
  }
}
