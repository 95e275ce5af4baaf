/**
 * One execution of a run, walking its journal.
 *
 * Every operation of the run's code (a step, a token call, a wait, the time, a random value)
 * takes the next position of the journal. Live, it is performed and its result recorded on the
 * server before it returns; on replay (the run resumed on a worker that did not hold it in
 * memory, or a retry) the recorded result is returned and nothing is performed again. An
 * operation that does not match the journal at its position (another kind or another name; a
 * datetime wait matches by kind alone) is non-determinism: the run fails, naming both.
 */

import { AsyncLocalStorage } from "node:async_hooks";

import { ApiError, NonDeterminismError, ParallelOperationsError, RunMovedOnError } from "./errors.js";
import type { ListWaitpointTokensQueryParams, PageCursor } from "./tokens.js";
import type {
  CreateTokenBody,
  CreateWaitpointTokenResponse,
  JournalEntry,
  JournalKind,
  PageWire,
  ProlongWire,
  RejectTokenBody,
  RunTokenResponse,
  TokenDetailWire,
  TokenItemWire,
  WaitFor,
  WaitResponse,
} from "./wire.js";

/** The server calls an execution makes. */
export interface RunProtocol {
  /** Records a live operation's result at its position; answers what is recorded there. */
  record(runId: string, epoch: number, entry: JournalEntry): Promise<JournalEntry>;
  /** Creates a token for the run at `seq` (on a retry or replay, the one recorded there). */
  createToken(runId: string, epoch: number, seq: number, options: CreateTokenBody): Promise<RunTokenResponse>;
  /** Waits at `seq`: the result at once, or `suspended`. */
  wait(runId: string, epoch: number, seq: number, waitFor: WaitFor): Promise<WaitResponse>;
  /** Completes a token. */
  completeToken(id: string, data: unknown): Promise<{ success: true }>;
  /** Rejects a token. */
  rejectToken(id: string, body: RejectTokenBody): Promise<{ success: true }>;
  /** Sends a token a heartbeat. */
  heartbeatToken(id: string): Promise<ProlongWire>;
  /** Moves a token's timeout later. */
  extendToken(id: string, body: { timeout: string }): Promise<ProlongWire>;
  /** Retrieves a token. */
  retrieveToken(id: string): Promise<TokenDetailWire>;
  /** One page of tokens. */
  listTokens(params: ListWaitpointTokensQueryParams, cursor: PageCursor): Promise<PageWire<TokenItemWire>>;
}

/** What a suspended run gets when it resumes in memory. */
export interface Resume {
  /** The wait's result. */
  result: unknown;
  /** The run's new epoch. */
  epoch: number;
}

/** A wait expected to resume, registered before the server is asked (a resume may beat the answer). */
export interface Parked {
  /** Settles when the worker hands the run its result; never, if the worker drops the run. */
  readonly resumed: Promise<Resume>;
  /** The server suspended the run: it gives its slots back and waits for the resume. */
  suspended(): void;
  /** The wait was answered at once (or failed): nothing to expect. */
  withdraw(): void;
}

/** What an execution needs from whoever runs it: the server, suspension, the clock. */
export interface RunHost {
  readonly protocol: RunProtocol;
  /** Expects the resume of the wait at `seq`. */
  park(seq: number): Parked;
  /** The time now, in milliseconds. */
  now(): number;
}

/** Where the run starts. */
export interface RunStart {
  runId: string;
  taskId: string;
  attempt: number;
  epoch: number;
  /** The entries recorded before this execution (replayed in order). */
  journal: JournalEntry[];
}

/** Why an execution stops. */
type Poison = NonDeterminismError | RunMovedOnError | ParallelOperationsError;

type Begun = { replayed: true; result: unknown } | { replayed: false; seq: number };

function describe(kind: string, name: string): string {
  return `${kind} ${JSON.stringify(name)}`;
}

/**
 * Whether a recorded entry is another operation than one of `kind` named `name`. A datetime wait
 * matches by its kind alone: its recorded deadline is the truth, so code that computes the
 * deadline from the clock (another one on replay) resumes where it stopped.
 */
function diverges(entry: JournalEntry, kind: JournalKind, name: string): boolean {
  return entry.kind !== kind || (kind !== "WAIT_DATETIME" && entry.name !== name);
}

/** One execution of a run: its position in the journal, its lease, and what stops it. */
export class RunExecution {
  readonly runId: string;
  readonly taskId: string;
  readonly attempt: number;
  /** Aborted when the run moves on (canceled, or given to another worker) or the worker stops. */
  readonly abort = new AbortController();
  #epoch: number;
  #nextSeq = 0;
  readonly #journal: JournalEntry[];
  readonly #host: RunHost;
  /** The operation being performed live, if one is. */
  #inFlight: string | undefined;
  /** Why every further operation fails: the run moved on, diverged, or ran operations at once. */
  #poison: Poison | undefined;

  constructor(start: RunStart, host: RunHost) {
    this.runId = start.runId;
    this.taskId = start.taskId;
    this.attempt = start.attempt;
    this.#epoch = start.epoch;
    this.#journal = start.journal;
    this.#host = host;
  }

  /** The lease every call about the run carries. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Why the execution must stop, if it must. */
  get poison(): Poison | undefined {
    return this.#poison;
  }

  /** The journal's length when the execution started. */
  get replayedLength(): number {
    return this.#journal.length;
  }

  /** Whether the code returned before replaying everything that was recorded. */
  get unreplayed(): boolean {
    return this.#nextSeq < this.#journal.length;
  }

  /** The time now by the worker's clock. */
  now(): number {
    return this.#host.now();
  }

  /**
   * Whether the code is running again what an earlier execution ran: the next operation's result
   * is in the journal. False once the code has caught up, and inside a live step.
   */
  isReplaying(): boolean {
    return this.#inFlight === undefined && this.#journal[this.#nextSeq]?.result !== undefined;
  }

  /** Fails every further operation with `poison` (the first poison stays). */
  #poisonWith(poison: Poison): never {
    this.#poison ??= poison;
    if (poison instanceof RunMovedOnError) this.abort.abort(poison);
    throw this.#poison;
  }

  /** Checks the next position against an operation of `kind` named `name`. */
  #begin(kind: JournalKind, name: string): Begun {
    if (this.#poison) throw this.#poison;
    if (this.#inFlight !== undefined) {
      this.#poisonWith(new ParallelOperationsError(describe(kind, name), this.#inFlight));
    }
    const seq = this.#nextSeq;
    const entry = this.#journal[seq];
    if (entry) {
      if (diverges(entry, kind, name)) {
        this.#poisonWith(
          new NonDeterminismError(
            `the run's code diverged from its journal at position ${seq}: the journal recorded ` +
              `${describe(entry.kind, entry.name)}, the code now performs ${describe(kind, name)}`,
          ),
        );
      }
      if (entry.result !== undefined) {
        this.#nextSeq += 1;
        return { replayed: true, result: entry.result };
      }
    }
    this.#inFlight = describe(kind, name);
    return { replayed: false, seq };
  }

  /** Performs the operation begun at `seq` live; the next one takes the next position. */
  async #live<T>(seq: number, perform: () => Promise<T>): Promise<T> {
    try {
      // Code that starts operations at once (`Promise.all` of two waits) starts them in one
      // turn: let it, so that none of them reaches the server.
      await new Promise((resolve) => setImmediate(resolve));
      if (this.#poison) throw this.#poison;
      const value = await perform();
      this.#nextSeq = seq + 1;
      return value;
    } finally {
      this.#inFlight = undefined;
    }
  }

  /** Turns the server's refusals into poison: a lost run stops, a mismatch fails the run. */
  async #guard<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        this.#poisonWith(
          error.code === "journal_mismatch"
            ? new NonDeterminismError(error.message)
            : new RunMovedOnError(error.message),
        );
      }
      throw error;
    }
  }

  /**
   * An operation whose result is recorded through the journal: on replay the recorded result;
   * live, `perform`'s, recorded before it is returned. What is returned is what the server
   * recorded (the value as JSON keeps it), the same as a replay returns. A throw from `perform`
   * is not recorded.
   */
  async recorded<T>(kind: JournalKind, name: string, perform: () => Promise<T>): Promise<T> {
    const begun = this.#begin(kind, name);
    if (begun.replayed) return begun.result as T;
    return this.#live(begun.seq, async () => {
      const value = await perform();
      const entry: JournalEntry = { seq: begun.seq, kind, name, result: value === undefined ? null : value };
      const recorded = await this.#guard(this.#host.protocol.record(this.runId, this.#epoch, entry));
      return recorded.result as T;
    });
  }

  /** Creates a token for the run; on replay, the same token. */
  async createToken(options: CreateTokenBody): Promise<CreateWaitpointTokenResponse> {
    const begun = this.#begin("CREATE_TOKEN", "");
    if (begun.replayed) return begun.result as CreateWaitpointTokenResponse;
    return this.#live(begun.seq, async () => {
      const created = this.#host.protocol.createToken(this.runId, this.#epoch, begun.seq, options);
      return (await this.#guard(created)).token;
    });
  }

  /**
   * Waits: on replay the recorded result; live, asks the server, and if the run suspends, gives
   * its slots back and waits for the worker to hand it the result (which never comes if the
   * worker drops the run: it then resumes elsewhere, by replay). `checkLive` may refuse a wait
   * made live (never one replayed).
   */
  async wait(
    kind: "WAIT_TOKEN" | "WAIT_DATETIME" | "WAIT_SET",
    name: string,
    waitFor: WaitFor,
    checkLive: () => void = () => {},
  ): Promise<unknown> {
    const begun = this.#begin(kind, name);
    if (begun.replayed) return begun.result;
    return this.#live(begun.seq, async () => {
      checkLive();
      const parked = this.#host.park(begun.seq);
      let answer: WaitResponse;
      try {
        answer = await this.#guard(this.#host.protocol.wait(this.runId, this.#epoch, begun.seq, waitFor));
      } catch (error) {
        parked.withdraw();
        throw error;
      }
      if (!answer.suspended) {
        parked.withdraw();
        return answer.entry.result ?? null;
      }
      parked.suspended();
      const resume = await parked.resumed;
      this.#epoch = resume.epoch;
      return resume.result;
    });
  }

  /** Completes a token (the caller records it). */
  completeToken(id: string, data: unknown): Promise<{ success: true }> {
    return this.#host.protocol.completeToken(id, data);
  }

  /** Rejects a token (the caller records it). */
  rejectToken(id: string, body: RejectTokenBody): Promise<{ success: true }> {
    return this.#host.protocol.rejectToken(id, body);
  }

  /** Sends a token a heartbeat (the caller records it). */
  heartbeatToken(id: string): Promise<ProlongWire> {
    return this.#host.protocol.heartbeatToken(id);
  }

  /** Moves a token's timeout later (the caller records it). */
  extendToken(id: string, body: { timeout: string }): Promise<ProlongWire> {
    return this.#host.protocol.extendToken(id, body);
  }

  /** Retrieves a token (the caller records it). */
  retrieveToken(id: string): Promise<TokenDetailWire> {
    return this.#host.protocol.retrieveToken(id);
  }

  /** One page of tokens (the caller records it). */
  listTokens(params: ListWaitpointTokensQueryParams, cursor: PageCursor): Promise<PageWire<TokenItemWire>> {
    return this.#host.protocol.listTokens(params, cursor);
  }
}

/** The execution the code running now belongs to, across its awaits. */
export const runScope = new AsyncLocalStorage<RunExecution>();

/** The current execution, or a clear error naming `operation` outside a task's `run`. */
export function currentRun(operation: string): RunExecution {
  const run = runScope.getStore();
  if (!run) throw new Error(`${operation} can only be used from inside a task's run()`);
  return run;
}
