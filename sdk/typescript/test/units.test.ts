// The small pieces: retry delays, time-ordered ids, worker names, what a worker lists as held.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Worker, task } from "../src/index.js";
import { timeOrderedId } from "../src/ids.js";
import { Parking, Permit, Slots } from "../src/parking.js";
import { retryDelay } from "../src/task.js";

test("retries back off as Trigger.dev's do, up to the maximum, within maxAttempts", () => {
  const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => retryDelay({ maxAttempts: 10 }, attempt));
  assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
  assert.equal(retryDelay(undefined, 3), undefined, "3 attempts by default");
  assert.equal(retryDelay({ maxAttempts: 2, minTimeoutInMs: 10 }, 1), 10);
  assert.equal(retryDelay({ minTimeoutInMs: 100, randomize: true }, 1, () => 0.5), 150);
  assert.equal(retryDelay({ minTimeoutInMs: 500, factor: 3, maxTimeoutInMs: 2_000 }, 2), 1_500);
});

test("time-ordered ids sort in the order they are made, even when the clock stands still or steps back", () => {
  const now = 1_764_000_000_000;
  const ids = [timeOrderedId(now), timeOrderedId(now), timeOrderedId(now - 5), timeOrderedId(now + 1)];
  for (const id of ids) assert.match(id, /^c[0-9a-z]{24}$/);
  assert.deepEqual([...ids].sort(), ids);
});

test("a worker's id is its instance name, or a new id per process", () => {
  const run = () => Promise.resolve();
  const tasks = [task({ id: "units-task", run })];
  const secretKey = "tr_dev_Units000000000000000000";
  assert.equal(new Worker({ tasks, secretKey, instance: "billing-1" }).id, "worker_billing-1");
  const first = new Worker({ tasks, secretKey });
  const second = new Worker({ tasks, secretKey });
  assert.match(first.id, /^worker_c[0-9a-z]{24}$/);
  assert.notEqual(first.id, second.id);
  assert.ok(second.session > first.session, "a later start makes a later session");
  for (const bad of ["", "Billing", "billing_1", "a b", "a".repeat(65)]) {
    assert.throws(() => new Worker({ tasks, secretKey, instance: bad }), /invalid worker instance name/);
  }
  assert.throws(() => new Worker({ tasks: [], secretKey }), /needs at least one task/);
});

test("a poll lists the runs executing, reporting and deferred, not the suspended ones, with their latest epochs", () => {
  const slots = new Slots(2);
  const permit = () => (slots.take() ? new Permit([slots]) : undefined);
  const parking = new Parking(10, () => {});
  const listed = () => parking.holding().sort((a, b) => a.id.localeCompare(b.id));
  const first = parking.begin("run_a", 1, permit() as Permit);
  const second = parking.begin("run_b", 1, permit() as Permit);
  assert.deepEqual(listed(), [{ id: "run_a", epoch: 1 }, { id: "run_b", epoch: 1 }]);

  parking.park("run_a", first, 2).suspended();
  assert.equal(slots.free, 1, "a suspended run gives its slot back");
  assert.deepEqual(listed(), [{ id: "run_b", epoch: 1 }]);

  const deliver = parking.takeResume("run_a", 2, 3);
  assert.ok(deliver, "the suspended run expects its resume");
  assert.deepEqual(listed(), [{ id: "run_a", epoch: 3 }, { id: "run_b", epoch: 1 }]);

  parking.returned(second);
  assert.equal(slots.free, 2, "a run whose code returned gives its slot back");
  assert.ok(parking.reporting, "while its outcome is reported");
  assert.deepEqual(listed(), [{ id: "run_a", epoch: 3 }, { id: "run_b", epoch: 1 }], "and is still held");
  parking.end("run_b", second);
  assert.ok(!parking.reporting, "until it ends");
  parking.end("run_a", first);
  assert.ok(parking.defer({ id: "run_c", taskId: "t", payload: null, epoch: 4, attempt: 1, maxAttempts: 1, journalLength: 2 }, 2));
  assert.deepEqual(listed(), [{ id: "run_c", epoch: 4 }]);
});
