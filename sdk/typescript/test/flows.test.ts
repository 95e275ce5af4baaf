// The spec's flows on a worker in this process: approval (approved, rejected, timed out), the
// webhook callback, durable waits, steps, retries, slots, typed outputs, and the options that
// are refused.

import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import {
  AbortTaskRunError,
  ApiError,
  KeyRefusedError,
  type TaskOutput,
  UnsupportedOptionError,
  WaitpointRejectedError,
  WaitpointTimeoutError,
  Worker,
  runs,
  task,
  tasks,
  wait,
} from "../src/index.js";
import { SECRET_KEY, type Server, quietLog, startServer, waitForRun, waitingToken, withWorker } from "./harness.js";

let server: Server;
before(async () => {
  server = await startServer();
});
after(() => server.stop());

type ApprovalToken = { status: "approved" | "rejected" };

test("the spec's approval flow: approved, rejected, and timed out", async () => {
  const asked: string[] = [];
  const approveDocument = task({
    id: "flow-approve-document",
    run: async (doc: { title: string; timeout: string }) => {
      const token = await wait.createToken({ timeout: doc.timeout });
      await wait.step("ask for approval", () => {
        asked.push(doc.title);
      });
      const result = await wait.forToken<ApprovalToken>(token);
      if (result.ok) {
        return { title: doc.title, outcome: result.output.status === "approved" ? "published" : "sent back" };
      }
      const timedOut = result.error instanceof WaitpointTimeoutError;
      return { title: doc.title, outcome: "escalated", timedOut, error: result.error.message };
    },
  });
  await withWorker({ tasks: [approveDocument] }, async () => {
    const approved = await approveDocument.trigger({ title: "Q3 budget", timeout: "10m" });
    const rejected = await approveDocument.trigger({ title: "Q4 budget", timeout: "10m" });
    const timedOut = await approveDocument.trigger({ title: "Q1 budget", timeout: "1s" });
    await wait.completeToken<ApprovalToken>(await waitingToken(approved.id), { status: "approved" });
    await wait.completeToken<ApprovalToken>(await waitingToken(rejected.id), { status: "rejected" });
    assert.deepEqual((await waitForRun(approved.id)).output, { title: "Q3 budget", outcome: "published" });
    assert.deepEqual((await waitForRun(rejected.id)).output, { title: "Q4 budget", outcome: "sent back" });
    const late = await waitForRun<{ timedOut: boolean; error: string }>(timedOut.id);
    assert.equal(late.status, "COMPLETED");
    assert.equal(late.output?.timedOut, true);
    assert.match(late.output.error, /^Waitpoint timed out at \d{4}-/);
  });
  assert.deepEqual(asked.sort(), ["Q1 budget", "Q3 budget", "Q4 budget"]);
});

test("unwrap() throws a WaitpointTimeoutError: caught, or failing the run without retries", async () => {
  const caught = task({
    id: "flow-unwrap-caught",
    run: async () => {
      const token = await wait.createToken({ timeout: "1s" });
      try {
        await wait.forToken<ApprovalToken>(token.id).unwrap();
        return "no timeout";
      } catch (error) {
        return error instanceof WaitpointTimeoutError ? `caught: ${error.message}` : "another error";
      }
    },
  });
  const uncaught = task({
    id: "flow-unwrap-uncaught",
    run: async () => {
      const token = await wait.createToken({ timeout: "1s" });
      return await wait.forToken<ApprovalToken>(token).unwrap();
    },
  });
  await withWorker({ tasks: [caught, uncaught] }, async () => {
    const first = await caught.trigger();
    const second = await uncaught.trigger(undefined, { maxAttempts: 3 });
    assert.match(String((await waitForRun(first.id)).output), /^caught: Waitpoint timed out at /);
    const failed = await waitForRun(second.id);
    assert.equal(failed.status, "FAILED");
    assert.equal(failed.error?.name, "WaitpointTimeoutError");
    assert.match(failed.error.message, /^Waitpoint timed out at /);
    assert.equal(failed.attempt, 1, "a timeout is not retried: every replay would see it again");
  });
});

test("a rejected token: the result's error is a WaitpointRejectedError, and unwrap() fails the run without retries", async () => {
  const reviewed = task({
    id: "flow-rejected",
    run: async (unwrap: boolean) => {
      const token = await wait.createToken({ timeout: "1h" });
      if (unwrap) return await wait.forToken<ApprovalToken>(token).unwrap();
      const result = await wait.forToken<ApprovalToken>(token);
      if (result.ok || !(result.error instanceof WaitpointRejectedError)) return { unexpected: String(result.ok) };
      return { timeoutError: result.error instanceof WaitpointTimeoutError, code: result.error.code, data: result.error.data };
    },
  });
  const reject = async (runId: string) => {
    const token = await waitingToken(runId);
    const rejected = await wait.rejectToken(token, { message: "not this one", code: "NOPE", data: { why: [1] } });
    assert.deepEqual(rejected, { success: true });
  };
  await withWorker({ tasks: [reviewed] }, async () => {
    const caught = await reviewed.trigger(false);
    await reject(caught.id);
    assert.deepEqual((await waitForRun(caught.id)).output, { timeoutError: true, code: "NOPE", data: { why: [1] } });
    const uncaught = await reviewed.trigger(true, { maxAttempts: 3 });
    await reject(uncaught.id);
    const failed = await waitForRun(uncaught.id);
    assert.equal(failed.status, "FAILED");
    assert.equal(failed.error?.name, "WaitpointRejectedError");
    assert.equal(failed.error.message, "not this one");
    assert.equal(failed.attempt, 1, "a rejection is not retried: every replay would see it again");
  });
});

test("inside a run, rejectToken, heartbeatToken and extendToken are recorded: a replay sends none again and gets the same answers", async () => {
  // Every reject, heartbeat and extend this process sends.
  const sent: string[] = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : input.toString();
    const call = /\/api\/v1\/waitpoints\/tokens\/[^/]+\/(reject|heartbeat|extend)$/.exec(url)?.[1];
    if (call !== undefined) sent.push(call);
    return realFetch(input, init);
  };
  type Answers = { rejected: unknown; beat: string | undefined; extended: string | undefined; refused: string };
  const seen: Answers[] = [];
  const waiter = task({
    id: "flow-waits-on-work",
    run: async () => {
      const token = await wait.createToken({
        timeout: "10m",
        heartbeatTimeout: "1m",
        outputSchema: { type: "object" },
      });
      const result = await wait.forToken<ApprovalToken>(token);
      if (result.ok || !(result.error instanceof WaitpointRejectedError)) return { unexpected: String(result.ok) };
      const { message, code, data } = result.error;
      return { heartbeatUrl: token.heartbeatUrl !== undefined, message, code, data };
    },
  });
  const worker = task({
    id: "flow-works",
    run: async (payload: { target: string; beating: string }) => {
      const rejected = await wait.rejectToken(payload.target, { message: "not today", code: "NOT_TODAY", data: { by: 1 } });
      const beat = await wait.heartbeatToken(payload.beating);
      const extended = await wait.extendToken(payload.beating, "2h"); // a duration: recorded, so not counted again on replay
      let refused = "no";
      try {
        await wait.heartbeatToken(payload.target); // rejected: a 409, recorded too
      } catch (error) {
        refused = error instanceof ApiError ? error.message : String(error);
      }
      const answers = { rejected, beat: beat.heartbeatDeadline?.toISOString(), extended: extended.timeoutAt?.toISOString(), refused };
      seen.push(answers);
      await wait.forToken(await wait.createToken({ timeout: "10m" })).unwrap();
      return answers;
    },
  });
  try {
    const beating = await wait.createToken({ timeout: "10m", heartbeatTimeout: "1m" });
    const { target, working } = await withWorker({ tasks: [waiter, worker] }, async () => {
      const waiting = await waiter.trigger();
      const target = await waitingToken(waiting.id);
      const working = await worker.trigger({ target, beating: beating.id });
      assert.deepEqual((await waitForRun(waiting.id)).output, {
        heartbeatUrl: true,
        message: "not today",
        code: "NOT_TODAY",
        data: { by: 1 },
      });
      await waitForRun(working.id, (run) => run.status === "WAITING");
      return { target, working };
    });
    assert.deepEqual(sent.sort(), ["extend", "heartbeat", "heartbeat", "reject"]);
    const reply = await realFetch(`${server.baseURL}/api/v1/runs/${working.id}/journal`, {
      headers: { authorization: `Bearer ${SECRET_KEY}` },
    });
    const { entries } = (await reply.json()) as { entries: { kind: string; name: string }[] };
    assert.deepEqual(
      entries.slice(0, 4).map((entry) => `${entry.kind} ${entry.name}`),
      [
        `STEP wait.rejectToken ${target}`,
        `STEP wait.heartbeatToken ${beating.id}`,
        `STEP wait.extendToken ${beating.id}`,
        `STEP wait.heartbeatToken ${target}`,
      ],
    );
    // That worker left: the run resumes on this one, which replays it.
    await withWorker({ tasks: [waiter, worker] }, async () => {
      await wait.completeToken(await waitingToken(working.id), {});
      const done = await waitForRun<Answers>(working.id);
      assert.equal(done.status, "COMPLETED", JSON.stringify(done.error));
      assert.equal(seen.length, 2, "the code ran again");
      assert.deepEqual(seen[1], seen[0], "the same answers, and the same refusal, on replay");
      assert.deepEqual(done.output, seen[0]);
    });
    assert.deepEqual(sent.sort(), ["extend", "heartbeat", "heartbeat", "reject"], "nothing sent again on replay");
    const first = seen[0];
    assert.ok(first);
    assert.deepEqual(first.rejected, { success: true });
    assert.match(first.refused, /^409: .*a heartbeat keeps only a waiting token alive/);
    assert.equal((await wait.retrieveToken(beating)).timeoutAt?.toISOString(), first.extended);
  } finally {
    globalThis.fetch = realFetch;
  }
});

test("a missed heartbeat inside a run: the wait's error is a WaitpointTimeoutError with the heartbeat's code", async () => {
  const silent = task({
    id: "flow-no-heartbeat",
    run: async () => {
      const token = await wait.createToken({ timeout: "10m", heartbeatTimeout: "1s" });
      const result = await wait.forToken(token);
      if (result.ok || !(result.error instanceof WaitpointTimeoutError)) return { unexpected: String(result.ok) };
      const rejected = result.error instanceof WaitpointRejectedError;
      return { rejected, code: result.error.code, message: result.error.message };
    },
  });
  await withWorker({ tasks: [silent] }, async () => {
    const run = await silent.trigger();
    const done = await waitForRun<{ rejected: boolean; code: string; message: string }>(run.id);
    assert.equal(done.output?.rejected, false);
    assert.equal(done.output.code, "WAITPOINT_HEARTBEAT_TIMEOUT");
    assert.match(done.output.message, /^Waitpoint timed out at .*: no heartbeat for 1s$/);
  });
});

test("the spec's webhook flow: a service POSTs its result to the token's URL", async () => {
  const service = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      const { webhook, prompt } = JSON.parse(body) as { webhook: string; prompt: string };
      response.end(JSON.stringify({ id: "p-1", status: "starting" }));
      setTimeout(() => {
        void fetch(webhook, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ id: "p-1", status: "succeeded", output: `a painting of ${prompt}` }),
        });
      }, 200);
    });
  });
  await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve));
  const address = service.address();
  const serviceUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  type Prediction = { id: string; status: string; output: string };
  const generate = task({
    id: "flow-generate-image",
    run: async (input: { prompt: string }) => {
      const token = await wait.createToken({ timeout: "10m" });
      const started = await wait.step("start the prediction", async () => {
        const reply = await fetch(`${serviceUrl}/predictions`, {
          method: "POST",
          body: JSON.stringify({ prompt: input.prompt, webhook: token.url }),
        });
        return (await reply.json()) as { status: string };
      });
      const prediction = await wait.forToken<Prediction>(token).unwrap();
      return { started: started.status, prediction: prediction.id, image: prediction.output };
    },
  });
  try {
    await withWorker({ tasks: [generate] }, async () => {
      const run = await generate.trigger({ prompt: "a cat by Andy Warhol" });
      assert.deepEqual((await waitForRun(run.id)).output, {
        started: "starting",
        prediction: "p-1",
        image: "a painting of a cat by Andy Warhol",
      });
    });
  } finally {
    service.close();
  }
});

test("waiting runs hold no slot and resume in memory: five runs wait on a worker with one slot", async () => {
  let executions = 0;
  const approve = task({
    id: "flow-one-slot",
    run: async (n: number) => {
      executions += 1;
      const token = await wait.createToken({ timeout: "10m", tags: [`slot-${n}`] });
      const approval = await wait.forToken<ApprovalToken>(token).unwrap();
      return { n, status: approval.status };
    },
  });
  await withWorker({ tasks: [approve], concurrency: 1 }, async () => {
    const triggered = [];
    for (let n = 0; n < 5; n++) triggered.push(await approve.trigger(n));
    const tokens = [];
    for (const run of triggered) tokens.push(await waitingToken(run.id));
    // One at a time: a resumed run that finds every slot taken may be given back, and replayed.
    for (const [n, run] of triggered.entries()) {
      await wait.completeToken<ApprovalToken>(tokens[n] ?? "", { status: "approved" });
      assert.deepEqual((await waitForRun(run.id)).output, { n, status: "approved" });
    }
  });
  assert.equal(executions, 5, "each run resumed in memory, without replaying its code");
});

test("resumed runs that find every slot taken wait for one, or are given back and replayed", async () => {
  const effects: number[] = [];
  const crowded = task({
    id: "flow-crowded",
    run: async (n: number) => {
      const token = await wait.createToken({ tags: [`crowded-${n}`] });
      await wait.step("announce", () => effects.push(n));
      return { n, answer: await wait.forToken<number>(token).unwrap() };
    },
  });
  await withWorker({ tasks: [crowded], concurrency: 1 }, async () => {
    const triggered = [];
    for (let n = 0; n < 4; n++) triggered.push(await crowded.trigger(n));
    const tokens = await Promise.all(triggered.map((run) => waitingToken(run.id)));
    await Promise.all(tokens.map((token, n) => wait.completeToken(token, n * 10)));
    for (const [n, run] of triggered.entries()) {
      assert.deepEqual((await waitForRun(run.id)).output, { n, answer: n * 10 });
    }
  });
  assert.deepEqual(effects.sort(), [0, 1, 2, 3], "each step ran once");
});

test("suspended runs beyond maxSuspended are dropped from memory and resume by replay", async () => {
  let executions = 0;
  const evicted = task({
    id: "flow-evicted",
    run: async (n: number) => {
      executions += 1;
      const token = await wait.createToken({});
      return { n, answer: await wait.forToken<string>(token).unwrap() };
    },
  });
  await withWorker({ tasks: [evicted], maxSuspended: 1 }, async () => {
    const triggered = [];
    for (let n = 0; n < 3; n++) triggered.push(await evicted.trigger(n));
    const tokens = [];
    for (const run of triggered) tokens.push(await waitingToken(run.id));
    for (const [n, run] of triggered.entries()) {
      await wait.completeToken(tokens[n] ?? "", `yes ${n}`);
      assert.deepEqual((await waitForRun(run.id)).output, { n, answer: `yes ${n}` });
    }
  });
  assert.equal(executions, 5, "the two evicted runs replayed; the one kept resumed in memory");
});

test("a run resumed on another worker replays: the same token and values, steps and logs not repeated", async () => {
  const effects: string[] = [];
  const seen: unknown[] = [];
  const replayed = task({
    id: "flow-replayed",
    run: async (name: string) => {
      effects.push("code before the wait");
      const token = await wait.createToken({ timeout: "10m" });
      const sent = await wait.step("send the email", () => {
        effects.push("email sent");
        return { to: name, messageId: "m-1" };
      });
      const values = { token: token.id, now: (await wait.now()).toISOString(), uuid: await wait.uuid(), r: await wait.random() };
      seen.push(values);
      const approval = await wait.forToken<ApprovalToken>(token).unwrap();
      return { sent, values, status: approval.status };
    },
  });
  const run = await withWorker({ tasks: [replayed] }, async () => {
    const triggered = await replayed.trigger("ada");
    await waitingToken(triggered.id);
    return triggered;
  });
  // That worker left: the run resumes on this one, which never had it in memory.
  await withWorker({ tasks: [replayed] }, async () => {
    await wait.completeToken<ApprovalToken>(await waitingToken(run.id), { status: "approved" });
    const done = await waitForRun<{ values: unknown; sent: unknown }>(run.id);
    assert.equal(done.status, "COMPLETED");
    assert.deepEqual(done.output?.sent, { to: "ada", messageId: "m-1" });
    assert.ok(seen.length >= 2, "the code before the wait ran again");
    for (const values of seen) assert.deepEqual(values, seen[0], "the same token, time and random values on replay");
    assert.deepEqual(done.output.values, seen[0]);
  });
  assert.equal(effects.filter((effect) => effect === "email sent").length, 1, "the step did not run again");
  assert.equal(effects.filter((effect) => effect === "code before the wait").length, seen.length);
});

test("the logger stays quiet while a run replays", async () => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  const { logger } = await import("../src/index.js");
  const logged = task({
    id: "flow-logged",
    run: async () => {
      logger.info("before the wait");
      await wait.for({ seconds: 0.2 });
      logger.info("after the wait");
      return "done";
    },
  });
  const capture = (chunk: string | Uint8Array) => {
    lines.push(chunk.toString());
    return true;
  };
  process.stderr.write = capture;
  try {
    const run = await withWorker({ tasks: [logged] }, async () => {
      const triggered = await logged.trigger();
      await waitForRun(triggered.id, (candidate) => candidate.status === "WAITING");
      return triggered;
    });
    await withWorker({ tasks: [logged] }, () => waitForRun(run.id));
  } finally {
    process.stderr.write = write;
  }
  const said = lines.filter((line) => line.includes("flow-logged"));
  assert.equal(said.filter((line) => line.includes("before the wait")).length, 1, said.join(""));
  assert.equal(said.filter((line) => line.includes("after the wait")).length, 1, said.join(""));
});

test("retries continue from the journal: a completed step is not run again", async () => {
  let charges = 0;
  const flaky = task({
    id: "flow-flaky",
    retry: { maxAttempts: 3, minTimeoutInMs: 10, factor: 1 },
    run: async (_payload: undefined, { ctx }) => {
      const charge = await wait.step("charge the card", () => {
        charges += 1;
        return `charge-${charges}`;
      });
      if (ctx.attempt.number === 1) throw new Error("the mail server is down");
      return { charge, attempt: ctx.attempt.number };
    },
  });
  const aborted = task({
    id: "flow-aborted",
    run: () => Promise.reject(new AbortTaskRunError("the order was withdrawn")),
  });
  await withWorker({ tasks: [flaky, aborted] }, async () => {
    const run = await flaky.trigger(undefined);
    const done = await waitForRun(run.id);
    assert.deepEqual(done.output, { charge: "charge-1", attempt: 2 });
    assert.equal(charges, 1);
    const abortedRun = await aborted.trigger(undefined, { maxAttempts: 5 });
    const failed = await waitForRun(abortedRun.id);
    assert.deepEqual([failed.status, failed.error, failed.attempt], [
      "FAILED",
      { name: "AbortTaskRunError", message: "the order was withdrawn" },
      1,
    ]);
  });
});

test("durable waits: wait.for and wait.until suspend the run; a past date can be refused", async () => {
  const waiter = task({
    id: "flow-waiter",
    run: async () => {
      const start = await wait.now();
      await wait.for({ seconds: 1 });
      await wait.until({ date: new Date(start.getTime() + 1_500) });
      try {
        await wait.until({ date: new Date(start.getTime() - 60_000), throwIfInThePast: true });
        return "waited";
      } catch (error) {
        return error instanceof Error ? error.message : "?";
      }
    },
  });
  await withWorker({ tasks: [waiter] }, async () => {
    const run = await waiter.trigger();
    const waiting = await waitForRun(run.id, (candidate) => candidate.status === "WAITING");
    assert.equal(waiting.waitingOn[0]?.type, "DATETIME");
    const done = await waitForRun(run.id);
    assert.equal(done.output, "Date is in the past");
    assert.ok(done.updatedAt.getTime() - done.createdAt.getTime() >= 1_400, "it waited");
  });
});

test("queue.concurrencyLimit: a task's runs execute one at a time", async () => {
  let executing = 0;
  let most = 0;
  const serial = task({
    id: "flow-serial",
    queue: { concurrencyLimit: 1 },
    run: async (n: number) => {
      await wait.step("work", async () => {
        executing += 1;
        most = Math.max(most, executing);
        await sleep(100);
        executing -= 1;
      });
      return n;
    },
  });
  await withWorker({ tasks: [serial] }, async () => {
    const triggered = await Promise.all([1, 2, 3].map((n) => serial.trigger(n)));
    for (const [index, run] of triggered.entries()) assert.equal((await waitForRun(run.id)).output, index + 1);
  });
  assert.equal(most, 1);
});

test("two waits at once fail the run, without retries", async () => {
  const parallel = task({
    id: "flow-parallel",
    run: async () => {
      const [a, b] = [await wait.createToken({}), await wait.createToken({})];
      return await Promise.all([wait.forToken(a), wait.forToken(b)]);
    },
  });
  await withWorker({ tasks: [parallel] }, async () => {
    const run = await parallel.trigger();
    const failed = await waitForRun(run.id);
    assert.equal(failed.status, "FAILED");
    assert.equal(failed.error?.name, "ParallelOperations");
    assert.equal(failed.attempt, 1);
  });
});

test("a canceled run stays canceled when its token completes later", async () => {
  let executions = 0;
  const canceled = task({
    id: "flow-canceled",
    run: async () => {
      executions += 1;
      const token = await wait.createToken({});
      return await wait.forToken(token).unwrap();
    },
  });
  await withWorker({ tasks: [canceled] }, async () => {
    const run = await canceled.trigger();
    const token = await waitingToken(run.id);
    await runs.cancel(run.id);
    await wait.completeToken(token, { late: true });
    await sleep(300);
    assert.equal((await runs.retrieve(run.id)).status, "CANCELED");
  });
  assert.equal(executions, 1);
});

test("typed payloads and outputs", async () => {
  const typed = task({
    id: "flow-typed",
    run: async (payload: { n: number }) => {
      const approval = await wait.step("approve", (): ApprovalToken => ({ status: "approved" }));
      return { doubled: payload.n * 2, status: approval.status };
    },
  });
  // Compile-time: the payload and the output carry their types.
  const expectOutput = (output: TaskOutput<typeof typed>): { doubled: number; status: "approved" | "rejected" } =>
    output;
  const wrongPayload = () =>
    // @ts-expect-error the payload is `{ n: number }`
    typed.trigger({ n: "two" });
  assert.equal(typeof wrongPayload, "function");
  await withWorker({ tasks: [typed] }, async () => {
    const handle = await tasks.trigger<typeof typed>("flow-typed", { n: 21 });
    const done = await waitForRun<TaskOutput<typeof typed>>(handle.id);
    assert.ok(done.output);
    assert.deepEqual(expectOutput(done.output), { doubled: 42, status: "approved" });
  });
});

test("options waitpoint does not have are refused when the task is declared or triggered", async () => {
  const run = () => Promise.resolve();
  const declare = (options: object) => () => task({ id: "flow-refused", run, ...options });
  assert.throws(declare({ machine: "small-1x" }), /`machine` is not supported by waitpoint/);
  assert.throws(declare({ onSuccess: run }), UnsupportedOptionError);
  assert.throws(declare({ retry: { outOfMemory: { machine: "large-1x" } } }), /`outOfMemory`/);
  assert.throws(declare({ queue: { name: "shared", concurrencyLimit: 1 } }), /`name`/);
  assert.throws(declare({ queue: { concurrencyLimit: 0 } }), RangeError);
  assert.throws(() => task({ id: "flow refused", run }), /the id must be/);
  const fine = task({ id: "flow-fine", run });
  await assert.rejects(
    fine.trigger(undefined, { priority: 10 } as Parameters<typeof fine.trigger>[1]),
    /`priority` is not supported by waitpoint/,
  );
  assert.throws(() => new Worker({ tasks: [fine, task({ id: "flow-fine", run })] }), /two tasks share the id/);
  assert.throws(() => new Worker({ tasks: [fine], instance: "Billing_1" }), /invalid worker instance name/);
});

test("a worker stopped as a run returns reports its outcome before it leaves", async () => {
  const stop = new AbortController();
  const last = task({
    id: "flow-last",
    run: () => {
      // The worker is told to stop as the code returns an output that takes a while to report:
      // its slot is free at once, its report still in flight.
      stop.abort();
      return Promise.resolve("x".repeat(2 << 20));
    },
  });
  const worker = new Worker({ tasks: [last], log: quietLog().log, shutdownGraceMs: 5_000 });
  const running = worker.run(stop.signal);
  const run = await last.trigger(undefined);
  await running;
  const done = await runs.retrieve<string>(run.id);
  assert.equal(done.status, "COMPLETED", "reported before the worker left, not handed back");
  assert.equal(done.output?.length, 2 << 20);
});

test("a worker whose key is refused stops with KeyRefusedError", async () => {
  const fine = task({ id: "flow-key", run: () => Promise.resolve() });
  const worker = new Worker({ tasks: [fine], secretKey: "tr_dev_NotTheKey00000000000000", log: quietLog().log });
  await assert.rejects(worker.run(), KeyRefusedError);
});
