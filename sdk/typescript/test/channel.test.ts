// The worker channel: how operations are gathered into batches, how answers map to errors, what
// goes again, what a malformed answer does (against a scripted peer: a server never sends one),
// and, against a real server, that runs send every operation through it.

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { ApiError, task, wait } from "../src/index.js";
import {
  MAX_BATCH_BYTES,
  MAX_BATCH_OPERATIONS,
  type Pending,
  WorkerChannel,
  answerError,
  takeBatch,
} from "../src/channel.js";
import { ApiClient } from "../src/client.js";
import { type Server, freePort, startServer, waitForRun, waitingToken, withWorker } from "./harness.js";

let server: Server;
let metricsURL: string;
before(async () => {
  const port = await freePort();
  metricsURL = `http://127.0.0.1:${port}/metrics`;
  server = await startServer(["--metrics-listen", `127.0.0.1:${port}`]);
});
after(() => server.stop());

function pending(bytes: number): Pending {
  return { json: "x".repeat(bytes), bytes, resolve: () => {}, reject: () => {} };
}

test("a batch takes what is ready from the front, up to its limits, and at least one operation", () => {
  const ready = Array.from({ length: MAX_BATCH_OPERATIONS + 5 }, () => pending(2));
  assert.equal(takeBatch(ready).length, MAX_BATCH_OPERATIONS);
  assert.equal(takeBatch(ready).length, 5);
  assert.deepEqual(takeBatch(ready), []);

  const first = pending(1);
  const big = [first, pending(MAX_BATCH_BYTES), pending(1)];
  assert.deepEqual(takeBatch(big), [first], "the big one does not fit beside the first");
  assert.equal(takeBatch(big)[0]?.bytes, MAX_BATCH_BYTES, "alone, it goes");
  assert.equal(takeBatch(big).length, 1);
});

test("an operation's answer that is not a success is its route's error", () => {
  const moved = answerError({ status: 409, body: { error: "the run moved on", code: "run_moved_on" } });
  assert.ok(moved instanceof ApiError);
  assert.equal(moved.status, 409);
  assert.equal(moved.code, "run_moved_on");
  assert.equal(moved.message, "409: the run moved on");
  const odd = answerError({ status: 500, body: null });
  assert.equal(odd.message, "500: null");
  assert.equal(odd.code, undefined);
});

/** A peer that answers the n-th batch with `answers[n]` and keeps the bodies it got. */
async function scriptedPeer(answers: unknown[]): Promise<{ channel: WorkerChannel; bodies: unknown[]; close: () => void }> {
  const bodies: unknown[] = [];
  const peer = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      bodies.push(JSON.parse(body));
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify(answers[bodies.length - 1] ?? {}));
    });
  });
  await new Promise<void>((resolve) => peer.listen(0, "127.0.0.1", resolve));
  const { port } = peer.address() as AddressInfo;
  const channel = new WorkerChannel(new ApiClient(`http://127.0.0.1:${port}`, "tr_dev_ScriptedPeer000000000000"));
  return { channel, bodies, close: () => peer.close() };
}

test("operations of one turn leave in one batch, and one answered 503 goes again alone", async () => {
  const entry = { seq: 0, kind: "STEP", name: "a", result: 1 };
  const peer = await scriptedPeer([
    { answers: [{ status: 200, body: { entries: [] } }, { status: 503, body: { error: "stopping" } }] },
    { answers: [{ status: 200, body: { entry } }] },
  ]);
  try {
    const [journal, recorded] = await Promise.all([
      peer.channel.call({ op: "journal", run: "run_a" }),
      peer.channel.call({ op: "record", run: "run_b", epoch: 1, entry }),
    ]);
    assert.deepEqual(journal, { entries: [] });
    assert.deepEqual(recorded, { entry });
    assert.deepEqual(peer.bodies, [
      { operations: [{ op: "journal", run: "run_a" }, { op: "record", run: "run_b", epoch: 1, entry }] },
      { operations: [{ op: "record", run: "run_b", epoch: 1, entry }] },
    ]);
  } finally {
    peer.close();
  }
});

test("a second batch leaves while the first waits for its answer", async () => {
  // A peer that answers the first batch only once the second arrived: with one batch in flight
  // at a time, neither would ever be answered.
  let batches = 0;
  let answerFirst: () => void = () => {};
  const secondArrived = new Promise<void>((resolve) => (answerFirst = resolve));
  let firstArrived: () => void = () => {};
  const firstArrival = new Promise<void>((resolve) => (firstArrived = resolve));
  const peer = http.createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      batches += 1;
      const answer = () => {
        response.setHeader("content-type", "application/json");
        response.end(JSON.stringify({ answers: [{ status: 200, body: { entries: [] } }] }));
      };
      if (batches === 1) {
        firstArrived();
        void secondArrived.then(answer);
      } else {
        answerFirst();
        answer();
      }
    });
  });
  await new Promise<void>((resolve) => peer.listen(0, "127.0.0.1", resolve));
  const { port } = peer.address() as AddressInfo;
  const channel = new WorkerChannel(new ApiClient(`http://127.0.0.1:${port}`, "tr_dev_ScriptedPeer000000000000"));
  try {
    const first = channel.call({ op: "journal", run: "run_a" });
    await firstArrival;
    const second = channel.call({ op: "journal", run: "run_b" });
    const both = Promise.all([first, second]).then(() => "both answered");
    const outcome = await Promise.race([both, sleep(5_000, "the first waited for the second", { ref: false })]);
    answerFirst(); // A first batch still held (sent alone) is answered, so nothing is left pending.
    await both;
    assert.equal(outcome, "both answered");
  } finally {
    peer.closeAllConnections();
    peer.close();
  }
});

test("an answer that is not a list of answers fails its operations, and the channel goes on", async () => {
  const peer = await scriptedPeer([{}, { answers: [null] }, { answers: [{ status: 200, body: { entries: [] } }] }]);
  try {
    await assert.rejects(peer.channel.call({ op: "journal", run: "run_a" }), /no list of answers/);
    await assert.rejects(peer.channel.call({ op: "journal", run: "run_a" }), /not \{"status", "body"\}/);
    assert.deepEqual(await peer.channel.call({ op: "journal", run: "run_a" }), { entries: [] });
  } finally {
    peer.close();
  }
});

/** Requests the server answered, by route template, from its metrics. */
async function requestsByRoute(): Promise<Map<string, number>> {
  const text = await (await fetch(metricsURL)).text();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^waitpoint_http_requests_total\{([^}]*)\} (\d+)$/gm)) {
    const route = /route="([^"]*)"/.exec(match[1] ?? "")?.[1] ?? "";
    counts.set(route, (counts.get(route) ?? 0) + Number(match[2]));
  }
  return counts;
}

test("runs send their operations through the channel, many to a request, and none by route", async () => {
  const RUNS = 40;
  const approve = task({
    id: "channel-approve",
    run: async (n: number) => {
      const token = await wait.createToken({ timeout: "10m" });
      await wait.step("announce", () => n);
      const approval = await wait.forToken<{ by: string }>(token).unwrap();
      return { n, by: approval.by };
    },
  });
  // Triggered before the worker starts, so that its first poll takes them all at once.
  const triggered = await Promise.all(Array.from({ length: RUNS }, (_, n) => approve.trigger(n)));
  await withWorker({ tasks: [approve] }, async () => {
    const tokens = await Promise.all(triggered.map((run) => waitingToken(run.id)));
    await Promise.all(tokens.map((token) => wait.completeToken(token, { by: "ops" })));
    for (const [n, run] of triggered.entries()) {
      assert.deepEqual((await waitForRun(run.id)).output, { n, by: "ops" });
    }
  });
  const requests = await requestsByRoute();
  const batches = requests.get("/api/v1/workers/batch") ?? 0;
  // Each run created a token, recorded a step, waited and completed its attempt.
  const operations = RUNS * 4;
  assert.ok(batches > 0, "the worker sent batches");
  assert.ok(batches <= operations / 2, `${batches} batches carried ${operations} operations`);
  const byRoute = [...requests].filter(([route]) => /^\/api\/v1\/runs\/\{[^}]+\}\/(journal|tokens|wait|attempt)/.test(route));
  assert.deepEqual(byRoute, [], "no operation went by its own route");
});
