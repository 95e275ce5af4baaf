// kill -9 of the Node worker while runs wait (on a token, or on a set) and while they are in the
// middle of a step, and of the server while the worker's operations are in flight: every run
// finishes once with the right output, completed steps never run again, interrupted ones do.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { task, tasks, wait } from "../src/index.js";
import type { crashApproval, crashSet } from "./fixtures/crash-tasks.js";
import {
  PACKAGE,
  SECRET_KEY,
  type Server,
  startServer,
  waitForRun,
  waitingOn,
  waitingToken,
  withWorker,
} from "./harness.js";

const BIN = path.join(PACKAGE, "build/src/bin/waitpoint-worker.js");
const TASKS = path.join(PACKAGE, "build/test/fixtures/crash-tasks.js");
const RUNS = 5;

let server: Server;
let scratch: string;
before(async () => {
  // A short worker timeout, so that an unnamed killed worker's runs move on within the test.
  server = await startServer(["--worker-timeout", "2s"]);
  scratch = mkdtempSync(path.join(os.tmpdir(), "waitpoint-crash-"));
});
after(async () => {
  await server.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** A worker process with the crash tasks; `instance` names it. */
function startWorker(name: string, instance?: string): { child: ChildProcess; output: () => string } {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WAITPOINT_API_URL: server.baseURL,
    WAITPOINT_SECRET_KEY: SECRET_KEY,
    CRASH_LOG: path.join(scratch, `${name}.log`),
    CRASH_RELEASE: path.join(scratch, `${name}.release`),
  };
  if (instance === undefined) delete env.WAITPOINT_WORKER_INSTANCE;
  else env.WAITPOINT_WORKER_INSTANCE = instance;
  const child = spawn(process.execPath, [BIN, TASKS], { env, stdio: ["ignore", "ignore", "pipe"] });
  let output = "";
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

/** How many lines of the log of `name` are `line`. */
function count(name: string, line: string): number {
  const file = path.join(scratch, `${name}.log`);
  if (!existsSync(file)) return 0;
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((candidate) => candidate === line || candidate.startsWith(`${line} `)).length;
}

async function until(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

test("a named worker killed while runs wait, then mid-step, takes its runs back: each finishes once", async () => {
  const name = "named";
  let worker = startWorker(name, "crash-named");
  const triggered = [];
  for (let i = 0; i < RUNS; i++) triggered.push(await tasks.trigger<typeof crashApproval>("crash-approval", { i }));
  const tokens = [];
  for (const run of triggered) tokens.push(await waitingToken(run.id));

  await kill(worker.child);
  worker = startWorker(name, "crash-named");
  for (const token of tokens) await wait.completeToken(token, { approved: true });
  await until("every run is in its slow step", () => [...Array(RUNS).keys()].every((i) => count(name, `slow-start ${i}`) === 1));

  await kill(worker.child);
  worker = startWorker(name, "crash-named");
  await until("every interrupted step runs again", () =>
    [...Array(RUNS).keys()].every((i) => count(name, `slow-start ${i}`) === 2),
  );
  writeFileSync(path.join(scratch, `${name}.release`), "");
  try {
    for (const [i, run] of triggered.entries()) {
      const done = await waitForRun(run.id);
      assert.equal(done.status, "COMPLETED", worker.output());
      assert.deepEqual(done.output, { i, approved: true, slow: `slow-${i}` });
      assert.equal(done.attempt, 1, "no attempt failed");
      assert.equal(count(name, `announce ${i}`), 1, "a completed step never runs again");
      assert.equal(count(name, `slow-end ${i}`), 1);
    }
  } finally {
    await kill(worker.child);
  }
});

test("an unnamed worker killed while runs wait: its runs resume on another once it is presumed gone", async () => {
  const name = "unnamed";
  let worker = startWorker(name);
  const triggered = [];
  for (let i = 0; i < RUNS; i++) triggered.push(await tasks.trigger<typeof crashApproval>("crash-approval", { i }));
  const tokens = [];
  for (const run of triggered) tokens.push(await waitingToken(run.id));
  await kill(worker.child);
  worker = startWorker(name);
  writeFileSync(path.join(scratch, `${name}.release`), "");
  for (const token of tokens) await wait.completeToken(token, { approved: false });
  try {
    for (const [i, run] of triggered.entries()) {
      const done = await waitForRun(run.id);
      assert.equal(done.status, "COMPLETED", worker.output());
      assert.deepEqual(done.output, { i, approved: false, slow: `slow-${i}` });
      assert.equal(count(name, `announce ${i}`), 1);
      assert.equal(count(name, `slow-start ${i}`), 1);
    }
  } finally {
    await kill(worker.child);
  }
});

test("a named worker killed while runs wait on sets of tokens replays them when restarted: each finishes once", async () => {
  const name = "sets";
  let worker = startWorker(name, "crash-sets");
  const triggered = [];
  for (let i = 0; i < RUNS; i++) triggered.push(await tasks.trigger<typeof crashSet>("crash-set", { i }));
  const sets = [];
  for (const run of triggered) sets.push(await waitingOn(run.id));

  await kill(worker.child);
  worker = startWorker(name, "crash-sets");
  for (const [i, [first, , third]] of sets.entries()) {
    await wait.completeToken(first ?? "", { approved: true });
    await wait.completeToken(third ?? "", { approved: i % 2 === 0 });
  }
  try {
    for (const [i, run] of triggered.entries()) {
      const done = await waitForRun(run.id);
      assert.equal(done.status, "COMPLETED", worker.output());
      assert.deepEqual(done.output, { i, answers: [true, "pending", i % 2 === 0] });
      assert.equal(done.attempt, 1, "no attempt failed");
      assert.equal(count(name, `set-announce ${i}`), 1, "a completed step never runs again");
      assert.equal(count(name, `set-execution ${i}`), 2, "executed, killed, then replayed once");
    }
  } finally {
    await kill(worker.child);
  }
});

test("the server killed while runs resume, then restarted: the worker sends again what did not get through, and each run finishes once", async () => {
  const count = 30;
  const effects = new Map<string, number>();
  const note = (line: string) => effects.set(line, (effects.get(line) ?? 0) + 1);
  let resumed = () => {};
  const firstResumed = new Promise<void>((resolve) => (resumed = resolve));
  const resumeAcross = task({
    id: "crash-server-restart",
    run: async ({ i }: { i: number }) => {
      const token = await wait.createToken({ timeout: "10m" });
      await wait.step("announce", () => note(`announce ${i}`));
      const approval = await wait.forToken<{ approved: boolean }>(token).unwrap();
      const after = await wait.step("after", () => {
        note(`after ${i}`);
        resumed();
        return `after-${i}`;
      });
      return { i, approved: approval.approved, after };
    },
  });
  await withWorker({ tasks: [resumeAcross] }, async () => {
    const triggered = await Promise.all(Array.from({ length: count }, (_, i) => resumeAcross.trigger({ i })));
    const tokens = await Promise.all(triggered.map((run) => waitingToken(run.id)));
    await Promise.all(tokens.map((token) => wait.completeToken(token, { approved: true })));
    // Killed once the first run is past its wait: the others' operations are on their way.
    await firstResumed;
    await server.crashAndRestart();
    for (const [i, run] of triggered.entries()) {
      const done = await waitForRun(run.id);
      assert.equal(done.status, "COMPLETED", server.output());
      assert.deepEqual(done.output, { i, approved: true, after: `after-${i}` });
      assert.equal(done.attempt, 1, "no attempt failed");
    }
  });
  for (let i = 0; i < count; i++) {
    assert.equal(effects.get(`announce ${i}`), 1, "a step before the crash ran once");
    assert.equal(effects.get(`after ${i}`), 1, "a step around the crash ran once: only its recording went again");
  }
});

test("waitpoint-worker exits 0 on SIGTERM, 1 when its key is refused, 2 without a module", async () => {
  const exit = (child: ChildProcess) =>
    new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const running = startWorker("signals");
  await until("the worker polls", () => running.output().includes("started"));
  const stopped = exit(running.child);
  running.child.kill("SIGTERM");
  assert.equal(await stopped, 0, running.output());

  const refused = spawn(process.execPath, [BIN, TASKS], {
    env: { ...process.env, WAITPOINT_API_URL: server.baseURL, WAITPOINT_SECRET_KEY: "tr_dev_NotTheKey00000000000000" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let said = "";
  refused.stderr.on("data", (chunk: Buffer) => (said += chunk.toString()));
  assert.equal(await exit(refused), 1);
  assert.match(said, /refused the secret key \(401/);

  const usage = spawn(process.execPath, [BIN], { stdio: ["ignore", "ignore", "pipe"] });
  assert.equal(await exit(usage), 2);
});
