// The token API outside a run, as the spec shows it: create, complete, retrieve, list; and the
// options Trigger.dev has that waitpoint does not, refused.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { UnsupportedOptionError, WaitpointTimeoutError, configure, wait } from "../src/index.js";
import { type Server, startServer } from "./harness.js";

let server: Server;
before(async () => {
  server = await startServer();
});
after(() => server.stop());

type ApprovalToken = { status: "approved" | "rejected" };

test("createToken returns the spec's fields, and the same token for the same idempotency key", async () => {
  const token = await wait.createToken({ timeout: "10m", idempotencyKey: "my-idempotency-key", tags: ["my-tag"] });
  assert.match(token.id, /^waitpoint_[0-9a-z]+$/);
  assert.equal(token.isCached, false);
  assert.ok(token.url.startsWith(`${server.baseURL}/api/v1/waitpoints/tokens/${token.id}/callback/`), token.url);
  assert.equal(token.publicAccessToken.split(".").length, 3);
  const again = await wait.createToken({ timeout: "10m", idempotencyKey: "my-idempotency-key", tags: ["my-tag"] });
  assert.deepEqual({ id: again.id, isCached: again.isCached }, { id: token.id, isCached: true });
});

test("a token completed with completeToken is retrieved with its typed output", async () => {
  const token = await wait.createToken({ timeout: new Date(Date.now() + 60_000), tags: "single" });
  assert.deepEqual(await wait.completeToken<ApprovalToken>(token.id, { status: "approved" }), { success: true });
  const done = await wait.retrieveToken<ApprovalToken>(token);
  assert.equal(done.status, "COMPLETED");
  assert.equal(done.output?.status, "approved");
  assert.equal(done.error, undefined);
  assert.deepEqual(done.tags, ["single"]);
  assert.ok(done.completedAt instanceof Date && done.createdAt instanceof Date && done.timeoutAt instanceof Date);
});

test("a token completed through its URL has the POSTed body as its output", async () => {
  const token = await wait.createToken({});
  const reply = await fetch(token.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: "prediction-1", status: "succeeded" }),
  });
  assert.equal(reply.status, 200);
  const done = await wait.retrieveToken<{ id: string; status: string }>(token.id);
  assert.deepEqual(done.output, { id: "prediction-1", status: "succeeded" });
});

test("a timed-out token is retrieved with a WaitpointTimeoutError", async () => {
  const token = await wait.createToken({ timeout: "1s" });
  let done = await wait.retrieveToken(token.id);
  while (done.status === "WAITING") {
    await new Promise((resolve) => setTimeout(resolve, 100));
    done = await wait.retrieveToken(token.id);
  }
  assert.equal(done.status, "TIMED_OUT");
  assert.ok(done.error instanceof WaitpointTimeoutError);
  assert.match(done.error.message, /^Waitpoint timed out at \d{4}-\d\d-\d\dT/);
  assert.equal(done.output, undefined);
});

test("listTokens: await gives a page, for await goes through every page, filters apply", async () => {
  const tag = `list-${Date.now()}`;
  const made = [];
  for (let i = 0; i < 5; i++) made.push((await wait.createToken({ tags: [tag] })).id);
  await wait.completeToken(made[0] ?? "", { done: true });

  const first = await wait.listTokens({ tags: tag, limit: 2 });
  assert.deepEqual(
    first.data.map((token) => token.id),
    made.slice(3).reverse(),
  );
  assert.ok(first.hasNextPage());
  const second = await first.getNextPage();
  assert.deepEqual(
    second.data.map((token) => token.id),
    made.slice(1, 3).reverse(),
  );

  const all: string[] = [];
  for await (const token of wait.listTokens({ tags: [tag], limit: 2 })) all.push(token.id);
  assert.deepEqual(all, [...made].reverse());

  const completed = [];
  for await (const token of await wait.listTokens({ tags: tag, status: "COMPLETED" })) completed.push(token);
  assert.deepEqual(
    completed.map((token) => [token.id, token.status]),
    [[made[0], "COMPLETED"]],
  );
  assert.ok(completed[0]?.createdAt instanceof Date);
});

test("options waitpoint does not have are refused, never ignored", async () => {
  const createOptions = { timeout: "1m", metadata: { a: 1 } } as Parameters<typeof wait.createToken>[0];
  await assert.rejects(wait.createToken(createOptions), UnsupportedOptionError);
  await assert.rejects(
    wait.listTokens({ type: "MANUAL" } as Parameters<typeof wait.listTokens>[0]),
    /`type` is not supported by waitpoint/,
  );
  assert.throws(() => {
    configure({ accessToken: "x" } as Parameters<typeof configure>[0]);
  }, UnsupportedOptionError);
  await assert.rejects(wait.forToken("waitpoint_c1"), /wait.forToken\(\) can only be used from inside a task's run\(\)/);
  await assert.rejects(
    wait.step("x", () => 1),
    /inside a task's run/,
  );
});
