// Set waits on a worker in this process: a run waits on any, all, or some of several tokens,
// periods and dates, and resumes with where each stood; a changed condition is non-determinism;
// sets the server would refuse are refused before anything is sent.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import {
  type WaitSetMember,
  type WaitSetResult,
  WaitpointTimeoutError,
  runs,
  task,
  wait,
} from "../src/index.js";
import { type Server, startServer, waitForRun, waitingOn, withWorker } from "./harness.js";

let server: Server;
before(async () => {
  server = await startServer();
});
after(() => server.stop());

type Approval = { approved: boolean };

/** A set's result as JSON: a timeout as its message. */
function standings<T>(result: WaitSetResult<T>): unknown {
  return {
    ok: result.ok,
    waitpoints: result.waitpoints.map((member: WaitSetMember<T>) => {
      if (member.ok === true) return { completed: member.output };
      if (member.ok === false) return { timedOut: member.error instanceof WaitpointTimeoutError };
      return "pending";
    }),
  };
}

test("approved by two of three: the run resumes at the second approval with each one's standing", async () => {
  let asked = 0;
  const approvers = task({
    id: "sets-two-of-three",
    run: async () => {
      const tokens = [];
      for (let i = 0; i < 3; i++) tokens.push(await wait.createToken({ timeout: "1h" }));
      await wait.step("ask the approvers", () => (asked += 1));
      const result = await wait.forAtLeast<Approval>(2, tokens);
      const answers = await wait.forAtLeast<Approval>(2, tokens.slice(1)).unwrap();
      return { standings: standings(result), again: answers.map((member) => member.ok) };
    },
  });
  await withWorker({ tasks: [approvers] }, async () => {
    const run = await approvers.trigger();
    const tokens = await waitingOn(run.id);
    assert.equal(tokens.length, 3, "the run waits on its three tokens");
    await wait.completeToken<Approval>(tokens[2] ?? "", { approved: true });
    await sleep(200);
    assert.equal((await runs.retrieve(run.id)).status, "WAITING", "one approval is not enough");
    await wait.completeToken<Approval>(tokens[1] ?? "", { approved: false });
    const done = await waitForRun(run.id);
    assert.equal(done.status, "COMPLETED", JSON.stringify(done));
    assert.deepEqual(done.output, {
      standings: {
        ok: true,
        waitpoints: ["pending", { completed: { approved: false } }, { completed: { approved: true } }],
      },
      again: [true, true],
    });
  });
  assert.equal(asked, 1, "resumed in memory: the step ran once");
});

test("any of a token or a period: whichever comes first", async () => {
  const race = task({
    id: "sets-token-or-a-period",
    run: async (seconds: number) => {
      const token = await wait.createToken({ timeout: "none" });
      return standings(await wait.forAny<string>([token, { seconds }]));
    },
  });
  await withWorker({ tasks: [race] }, async () => {
    const answered = await race.trigger(3_600);
    const [token, period] = await waitingOn(answered.id);
    assert.match(period ?? "", /^waitpoint_/, "the period is a waitpoint of the set");
    await wait.completeToken(token ?? "", "yes");
    assert.deepEqual((await waitForRun(answered.id)).output, { ok: true, waitpoints: [{ completed: "yes" }, "pending"] });

    const unanswered = await race.trigger(0.5);
    assert.deepEqual((await waitForRun(unanswered.id)).output, {
      ok: true,
      waitpoints: ["pending", { completed: null }],
    });
  });
});

test("all of them, where one times out: not ok; unwrap() fails the run at once naming the timeout", async () => {
  const caught = task({
    id: "sets-all-caught",
    run: async () => {
      const slow = await wait.createToken({ timeout: "1s" });
      const quick = await wait.createToken({ timeout: "1h" });
      await wait.completeToken(quick, "done");
      const inAnHour = new Date((await wait.now()).getTime() + 3_600_000);
      return standings(await wait.forAll([slow, quick, inAnHour]));
    },
  });
  const uncaught = task({
    id: "sets-all-uncaught",
    run: async () => {
      const slow = await wait.createToken({ timeout: "1s" });
      return await wait.forAll([slow, { hours: 1 }]).unwrap();
    },
  });
  await withWorker({ tasks: [caught, uncaught] }, async () => {
    const first = await caught.trigger();
    const second = await uncaught.trigger(undefined, { maxAttempts: 3 });
    assert.deepEqual((await waitForRun(first.id)).output, {
      ok: false,
      waitpoints: [{ timedOut: true }, { completed: "done" }, "pending"],
    });
    const failed = await waitForRun(second.id);
    assert.equal(failed.status, "FAILED");
    assert.equal(failed.attempt, 1, "a timeout is not retried: every replay would see it again");
    assert.equal(failed.error?.name, "WaitpointTimeoutError");
    assert.match(
      failed.error.message,
      /^the wait for all of 2 waitpoints cannot be met: 1 timed out \(waitpoint_\w+: Waitpoint timed out at \d{4}-/,
    );
  });
});

test("a set wait whose condition changed between deploys fails the run naming both conditions", async () => {
  const waiting = (all: boolean) =>
    task({
      id: "sets-changed",
      run: async () => {
        const tokens = [];
        for (let i = 0; i < 3; i++) tokens.push(await wait.createToken({}));
        return (await (all ? wait.forAll(tokens) : wait.forAtLeast(2, tokens))).ok;
      },
    });
  const twoOfThree = waiting(false);
  const run = await withWorker({ tasks: [twoOfThree] }, async () => {
    const triggered = await twoOfThree.trigger();
    await waitingOn(triggered.id);
    return triggered;
  });
  // That worker left; a new deployment waits for all three approvals, where the run waits for two.
  await withWorker({ tasks: [waiting(true)] }, async () => {
    for (const token of await waitingOn(run.id)) await wait.completeToken(token, {});
    const failed = await waitForRun(run.id);
    assert.deepEqual([failed.status, failed.error?.name, failed.attempt], ["FAILED", "NonDeterminism", 1]);
    assert.match(
      failed.error?.message ?? "",
      /position 3: the journal recorded WAIT_SET "2 of 3", the code now performs WAIT_SET "all of 3"/,
    );
  });
});

test("a set the server would refuse is refused before anything is sent", async () => {
  const refused = task({
    id: "sets-refused",
    run: async () => {
      const token = await wait.createToken({});
      const attempts: (() => Promise<unknown>)[] = [
        () => wait.forAny([]),
        () => wait.forAll([]),
        () => wait.forAtLeast(0, [token]),
        () => wait.forAtLeast(2, [token]),
        () => wait.forAtLeast(1.5, [token, { seconds: 1 }]),
        () => wait.forAny(Array.from({ length: 101 }, () => ({ seconds: 1 }))),
        () => wait.forAny([token, token.id]),
        () => wait.forAny([token, { seconds: 1, idempotencyKey: "once" } as { seconds: number }]),
        () => wait.forAny([token, { fortnights: 1 } as unknown as { days: number }]),
        () => wait.forAny([token, new Date(Number.NaN)]),
        () => wait.forAny([token, 42 as unknown as string]),
      ];
      const errors = [];
      for (const attempt of attempts) {
        errors.push(await attempt().then(
          () => "waited",
          (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error)),
        ));
      }
      return { token: token.id, errors };
    },
  });
  await withWorker({ tasks: [refused] }, async () => {
    const run = await refused.trigger();
    const done = await waitForRun<{ token: string; errors: string[] }>(run.id);
    assert.equal(done.status, "COMPLETED", JSON.stringify(done));
    assert.deepEqual(done.output?.errors, [
      "RangeError: wait.forAny(): a set wait waits on 1 to 100 waitpoints, not 0",
      "RangeError: wait.forAll(): a set wait waits on 1 to 100 waitpoints, not 0",
      "RangeError: wait.forAtLeast(): needed must be from 1 to the number of waitpoints (1), not 0",
      "RangeError: wait.forAtLeast(): needed must be from 1 to the number of waitpoints (1), not 2",
      "RangeError: wait.forAtLeast(): needed must be from 1 to the number of waitpoints (2), not 1.5",
      "RangeError: wait.forAny(): a set wait waits on 1 to 100 waitpoints, not 101",
      `RangeError: wait.forAny(): token ${done.output?.token ?? ""} is in the set twice`,
      "UnsupportedOptionError: wait.forAny(): item 1: `idempotencyKey` and `idempotencyKeyTTL` are not supported by " +
        "waitpoint: a wait inside a run is made once per journal position, so a replay or retry never waits twice",
      'UnsupportedOptionError: wait.forAny(): item 1: give exactly one of seconds, minutes, hours, days, weeks, months, ' +
        'years, got {"fortnights":1}',
      "RangeError: wait.forAny(): item 1: `date` must be a valid Date",
      "TypeError: wait.forAny(): item 1 must be a token (its id, or { id }), a period ({ seconds: 30 }, …) or a Date, " +
        "got 42",
    ]);
  });
  await assert.rejects(wait.forAny([{ seconds: 1 }]), /wait\.forAny\(\) can only be used from inside a task's run\(\)/);
});
