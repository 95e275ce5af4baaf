/**
 * What a worker holds: its slots, the runs executing or suspended in memory, the resumes those
 * expect, and the resumed runs that wait for a slot.
 *
 * A run that suspends gives its slots back and stays here (up to `maxSuspended`; the oldest
 * beyond are dropped, and resume elsewhere by replay). When the server hands it back, its wait
 * gets the result and the run continues in memory, without replay.
 */

import type { Parked, Resume, RunExecution } from "./journal.js";
import type { ClaimedRun, Lease } from "./wire.js";

/** A count of free slots. */
export class Slots {
  #free: number;
  readonly size: number;

  constructor(size: number) {
    this.size = size;
    this.#free = size;
  }

  get free(): number {
    return this.#free;
  }

  take(): boolean {
    if (this.#free === 0) return false;
    this.#free -= 1;
    return true;
  }

  give(): void {
    this.#free += 1;
  }
}

/** The slots one running run holds: the worker's and, if its task has a limit, the task's. */
export class Permit {
  #held = true;
  readonly #slots: Slots[];

  constructor(slots: Slots[]) {
    this.#slots = slots;
  }

  /** Gives the slots back (once). */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    for (const slots of this.#slots) slots.give();
  }
}

/** A resume as the worker delivers it: the result, the new epoch, and the slots to run with. */
export interface Delivery extends Resume {
  permit: Permit;
}

/** One execution of a run held here. */
export interface Held {
  /** The epoch the server handed the run over with, last. */
  epoch: number;
  /** The slots it runs with; none while it is suspended. */
  permit: Permit | undefined;
  /** The code's execution, once it started. */
  run: RunExecution | undefined;
  /** The resume it waits for, if it waits. */
  expecting: { seq: number; deliver: (delivery: Delivery) => void; suspendedOrder: number | undefined } | undefined;
}

/** How many ended executions are remembered, to tell a late copy of their claim from a new one. */
const ENDED_REMEMBERED = 4_096;

/** The runs a worker holds. */
export class Parking {
  readonly #held = new Map<string, Held>();
  /** The runs of `#held` that execute (not suspended): what a poll lists, without walking the suspended ones. */
  readonly #executing = new Set<string>();
  /** Suspended runs in the order they suspended (oldest first), for eviction. */
  readonly #suspended = new Map<number, string>();
  /** Resumed runs handed over while every slot was taken, oldest first. */
  #deferred: ClaimedRun[] = [];
  /** Executions whose code returned and whose outcome is being reported. */
  readonly #reporting = new Set<Held>();
  /** The epochs of executions that ended here lately (oldest first). */
  readonly #ended = new Map<string, number>();
  #order = 0;
  readonly #maxSuspended: number;
  readonly #slotsFreed: () => void;

  /** `slotsFreed` is called whenever a run gives its slots back (its code returned or it suspended) or ends. */
  constructor(maxSuspended: number, slotsFreed: () => void) {
    this.#maxSuspended = maxSuspended;
    this.#slotsFreed = slotsFreed;
  }

  /** Whether `runId` runs here, or ran here lately, under `epoch` or a newer one: a claim with `epoch` is then a late copy. */
  superseded(runId: string, epoch: number): boolean {
    const latest = this.#held.get(runId)?.epoch ?? this.#ended.get(runId);
    return latest !== undefined && latest >= epoch;
  }

  /** Registers a new execution of `runId` claimed with `epoch`, replacing any older one. */
  begin(runId: string, epoch: number, permit: Permit): Held {
    this.#forget(runId);
    const held: Held = { epoch, permit, run: undefined, expecting: undefined };
    this.#held.set(runId, held);
    this.#executing.add(runId);
    return held;
  }

  /**
   * The code of `held` returned: its slots go back while its outcome is reported. It stays held (polls list it)
   * until {@link end}.
   */
  returned(held: Held): void {
    held.permit?.release();
    held.permit = undefined;
    this.#reporting.add(held);
    this.#slotsFreed();
  }

  /** Whether an execution is reporting its outcome. */
  get reporting(): boolean {
    return this.#reporting.size > 0;
  }

  /** The execution `held` of `runId` ended: its slots go back. */
  end(runId: string, held: Held): void {
    held.permit?.release();
    held.permit = undefined;
    this.#reporting.delete(held);
    if (this.#held.get(runId) === held) {
      this.#held.delete(runId);
      this.#executing.delete(runId);
      this.#ended.delete(runId);
      this.#ended.set(runId, held.epoch);
      if (this.#ended.size > ENDED_REMEMBERED) {
        const oldest = this.#ended.keys().next().value;
        if (oldest !== undefined) this.#ended.delete(oldest);
      }
    }
    this.#slotsFreed();
  }

  /** Expects the resume of `held` (of `runId`) at `seq`; see {@link Parked}. */
  park(runId: string, held: Held, seq: number): Parked {
    let deliver: (delivery: Delivery) => void = () => {};
    const delivered = new Promise<Delivery>((resolve) => {
      deliver = resolve;
    });
    held.expecting = { seq, deliver, suspendedOrder: undefined };
    // The slots held when the wait was asked; a resume that beats the answer brings new ones.
    const running = held.permit;
    return {
      resumed: delivered.then(({ result, epoch, permit }) => {
        held.permit = permit;
        return { result, epoch };
      }),
      suspended: () => {
        running?.release();
        if (held.permit === running) held.permit = undefined;
        if (held.expecting?.seq === seq && this.#held.get(runId) === held) {
          const order = this.#order++;
          held.expecting.suspendedOrder = order;
          this.#suspended.set(order, runId);
          this.#executing.delete(runId);
          this.#evict();
        }
        this.#slotsFreed();
      },
      withdraw: () => {
        if (held.expecting?.seq === seq) held.expecting = undefined;
      },
    };
  }

  /** The delivery of the resume `runId` expects at `seq`, if it does; it continues under `epoch`. */
  takeResume(runId: string, seq: number, epoch: number): ((delivery: Delivery) => void) | undefined {
    const held = this.#held.get(runId);
    const expecting = held?.expecting;
    if (!held || !expecting || expecting.seq !== seq) return undefined;
    held.expecting = undefined;
    held.epoch = epoch;
    if (expecting.suspendedOrder !== undefined) {
      this.#suspended.delete(expecting.suspendedOrder);
      this.#executing.add(runId);
    }
    return expecting.deliver;
  }

  /**
   * The runs executing here (not suspended) or deferred, with their epochs: what the server should count as held
   * (a run it now has under a newer epoch was handed over again since, and the poll takes it again).
   */
  holding(): Lease[] {
    const leases: Lease[] = [];
    for (const id of this.#executing) {
      const held = this.#held.get(id);
      if (held) leases.push({ id, epoch: held.epoch });
    }
    for (const claimed of this.#deferred) leases.push({ id: claimed.id, epoch: claimed.epoch });
    return leases;
  }

  /** Holds `claimed` until a slot frees, unless `limit` runs wait already: then it is left for the server to give back. */
  defer(claimed: ClaimedRun, limit: number): boolean {
    if (this.#deferred.length >= limit) return false;
    this.#deferred.push(claimed);
    return true;
  }

  get hasDeferred(): boolean {
    return this.#deferred.length > 0;
  }

  takeDeferred(): ClaimedRun[] {
    const deferred = this.#deferred;
    this.#deferred = [];
    return deferred;
  }

  /** Drops every run (the worker stops): executing ones are told through their signal, suspended ones never resume here. */
  dropAll(reason: Error): void {
    for (const held of this.#held.values()) held.run?.abort.abort(reason);
    this.#held.clear();
    this.#executing.clear();
    this.#suspended.clear();
    this.#deferred = [];
    this.#reporting.clear();
  }

  /** Forgets `runId`'s execution here (a newer one replaces it). */
  #forget(runId: string): void {
    const old = this.#held.get(runId);
    const order = old?.expecting?.suspendedOrder;
    if (order !== undefined) this.#suspended.delete(order);
    this.#held.delete(runId);
    this.#executing.delete(runId);
  }

  /** Drops the oldest suspended runs beyond the limit: they resume elsewhere, by replay. */
  #evict(): void {
    while (this.#suspended.size > this.#maxSuspended) {
      const [order, runId] = this.#suspended.entries().next().value as [number, string];
      this.#suspended.delete(order);
      this.#held.delete(runId);
    }
  }
}
