// Replay across deploys and processes: code that no longer matches its journal fails the run
// naming both operations; a replayed datetime wait keeps its recorded deadline; a named instance
// started again takes its worker over and its runs back.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { type Task, Worker, WorkerReplacedError, task, wait } from "../src/index.js";
import { type Server, quietLog, startServer, waitForRun, waitingToken, withWorker } from "./harness.js";

let server: Server;
before(async () => {
  server = await startServer();
});
after(() => server.stop());

/** Triggers a run of `first` and lets it run until it waits; returns the run's id. */
async function suspendedOn(first: Task<string>): Promise<string> {
  return withWorker({ tasks: [first] }, async () => {
    const run = await first.trigger();
    await waitForRun(run.id, (candidate) => candidate.status === "WAITING");
    return run.id;
  });
}

test("a step renamed between deploys fails the run with a non-determinism error naming both", async () => {
  const before = task({
    id: "replay-renamed",
    run: async () => {
      await wait.step("charge card", () => "charge-1");
      return await wait.forToken(await wait.createToken({})).unwrap();
    },
  });
  const renamed = task({
    id: "replay-renamed",
    run: async () => {
      await wait.step("charge the card", () => "charge-2");
      return await wait.forToken(await wait.createToken({})).unwrap();
    },
  });
  const runId = await suspendedOn(before);
  await withWorker({ tasks: [renamed] }, async () => {
    await wait.completeToken(await waitingToken(runId), { ok: true });
    const failed = await waitForRun(runId);
    assert.equal(failed.status, "FAILED");
    assert.equal(failed.error?.name, "NonDeterminism");
    assert.match(
      failed.error.message,
      /position 0: the journal recorded STEP "charge card", the code now performs STEP "charge the card"/,
    );
    assert.equal(failed.attempt, 1, "not retried: every attempt would diverge the same way");
  });
});

test("code that returns before replaying its journal fails the run", async () => {
  const before = task({
    id: "replay-shortened",
    run: async () => {
      await wait.step("reserve stock", () => 3);
      await wait.forToken(await wait.createToken({}));
      return "shipped";
    },
  });
  const shortened = task({ id: "replay-shortened", run: () => Promise.resolve("shipped") });
  const runId = await suspendedOn(before);
  await withWorker({ tasks: [shortened] }, async () => {
    await wait.completeToken(await waitingToken(runId), {});
    const failed = await waitForRun(runId);
    assert.deepEqual([failed.status, failed.error?.name], ["FAILED", "NonDeterminism"]);
    assert.match(failed.error?.message ?? "", /returned before replaying its journal \(3 entries\)/);
  });
});

test("a replayed datetime wait matches by kind: the recorded deadline is the truth", async () => {
  const soon = task({
    id: "replay-datetime",
    run: async () => {
      await wait.until({ date: new Date(Date.now() + 1_000) });
      return "woke";
    },
  });
  const later = task({
    id: "replay-datetime",
    run: async () => {
      await wait.until({ date: new Date(Date.now() + 3_600_000) });
      return "woke";
    },
  });
  const runId = await suspendedOn(soon);
  await withWorker({ tasks: [later] }, async () => {
    const done = await waitForRun(runId);
    assert.deepEqual([done.status, done.output], ["COMPLETED", "woke"]);
  });
});

test("a named instance started again takes its worker over: the older process stops, the runs move at once", async () => {
  let stepRuns = 0;
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const named = task({
    id: "replay-named",
    run: async (kind: "waits" | "executes") => {
      if (kind === "waits") return await wait.forToken<{ n: number }>(await wait.createToken({})).unwrap();
      return await wait.step("slow", async () => {
        stepRuns += 1;
        await released;
        return { n: stepRuns };
      });
    },
  });
  const older = new Worker({ tasks: [named], instance: "replay-named", log: quietLog().log });
  const olderStopped = older.run().then(
    () => undefined,
    (error: unknown) => error,
  );
  const waiting = await named.trigger("waits");
  const token = await waitingToken(waiting.id);
  const executing = await named.trigger("executes");
  while (stepRuns === 0) await sleep(20);

  await withWorker({ tasks: [named], instance: "replay-named" }, async () => {
    assert.ok((await olderStopped) instanceof WorkerReplacedError);
    // The newer process took the executing run over at once, and replays it.
    while (stepRuns < 2) await sleep(20);
    release();
    await wait.completeToken(token, { n: 7 });
    assert.deepEqual((await waitForRun(waiting.id)).output, { n: 7 });
    const done = await waitForRun(executing.id);
    assert.equal(done.status, "COMPLETED");
    assert.equal(done.attempt, 1);
  });
  assert.equal(stepRuns, 2, "the interrupted step ran again on the newer process (steps are at-least-once)");
});
