// The token API outside a run, as the spec shows it: create, complete, retrieve, list; and the
// options Trigger.dev has that waitpoint does not, refused.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import {
  ApiError,
  UnsupportedOptionError,
  WaitpointRejectedError,
  WaitpointTimeoutError,
  configure,
  wait,
} from "../src/index.js";
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

/** A check for `assert.rejects`: an ApiError with `status` whose message (the server's) matches `message`. */
function apiError(status: number, message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, status, error.message);
    assert.match(error.message, message);
    return true;
  };
}

/** Retrieves the token every 100 ms while it waits, for at most 5 s. */
async function finished(id: string) {
  const deadline = Date.now() + 5_000;
  let token = await wait.retrieveToken(id);
  while (token.status === "WAITING" && Date.now() < deadline) {
    await sleep(100);
    token = await wait.retrieveToken(id);
  }
  return token;
}

test("createToken takes waitpoint's own options, answers with its own URLs, and retrieve shows them", async () => {
  const outputSchema = { type: "object", required: ["status"] };
  const token = await wait.createToken({
    timeout: "10m",
    outputSchema,
    heartbeatTimeout: "30s",
    callbackVerifier: { scheme: "hmac-sha256", secret: "s3cret", header: "x-sig" },
  });
  assert.ok(token.approvalUrl?.startsWith(`${server.baseURL}/approve/${token.id}/`), token.approvalUrl);
  assert.ok(token.rejectUrl?.startsWith(`${server.baseURL}/api/v1/waitpoints/tokens/${token.id}/reject/`), token.rejectUrl);
  const heartbeatUrl = `${server.baseURL}/api/v1/waitpoints/tokens/${token.id}/heartbeat/`;
  assert.ok(token.heartbeatUrl?.startsWith(heartbeatUrl), token.heartbeatUrl);
  const plain = await wait.createToken({});
  assert.equal(plain.heartbeatUrl, undefined, "only a token with a heartbeatTimeout has a heartbeat URL");
  assert.equal(typeof plain.rejectUrl, "string");

  const waiting = await wait.retrieveToken(token);
  assert.deepEqual(waiting.outputSchema, outputSchema);
  assert.equal(waiting.heartbeatTimeout, "30s");
  assert.ok(waiting.heartbeatDeadline instanceof Date);
  assert.deepEqual(waiting.callbackVerifier, { scheme: "hmac-sha256", header: "x-sig" }, "never the secret");
  assert.equal(waiting.outcome, undefined);

  // The callback URL takes only deliveries signed with the secret.
  const body = JSON.stringify({ status: "approved" });
  const deliver = (headers: Record<string, string>) =>
    fetch(token.url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  assert.equal((await deliver({})).status, 401);
  assert.equal((await deliver({ "x-sig": createHmac("sha256", "s3cret").update(body).digest("hex") })).status, 200);
  const done = await wait.retrieveToken<{ status: string }>(token);
  assert.deepEqual([done.status, done.outcome, done.output], ["COMPLETED", "COMPLETED", { status: "approved" }]);

  await assert.rejects(
    wait.createToken({ callbackVerifier: { scheme: "github", secret: "s", algorithm: "sha1" } as never }),
    /wait.createToken\(\) callbackVerifier: `algorithm` is not supported by waitpoint/,
  );
  await assert.rejects(wait.createToken({ heartbeatTimeout: "soon" }), apiError(400, /heartbeatTimeout/));
});

test("a completion that does not fit the token's outputSchema is a 422 with the server's message; the token still waits", async () => {
  const token = await wait.createToken({
    outputSchema: {
      type: "object",
      required: ["status"],
      properties: { status: { enum: ["approved", "rejected"] } },
    },
  });
  await assert.rejects(
    wait.completeToken<{ status: string }>(token, { status: "maybe" }),
    apiError(422, /^422: The output does not fit the token's outputSchema, at \/status: .*the token still waits$/),
  );
  assert.equal((await wait.retrieveToken(token)).status, "WAITING");
  assert.deepEqual(await wait.completeToken<ApprovalToken>(token, { status: "approved" }), { success: true });
  assert.deepEqual((await wait.retrieveToken<ApprovalToken>(token)).output, { status: "approved" });
});

test("rejectToken: retrieve gives a WaitpointRejectedError with its message, code and data; the first outcome wins", async () => {
  const tag = `rejected-${Date.now()}`;
  const token = await wait.createToken({ timeout: "10m", tags: [tag] });
  const rejection = { message: "card declined", code: "CARD_DECLINED", data: { attempt: 2 } };
  assert.deepEqual(await wait.rejectToken(token, rejection), { success: true });
  const done = await wait.retrieveToken(token.id);
  assert.equal(done.status, "TIMED_OUT", "Trigger.dev's shapes read a rejection as a timeout");
  assert.equal(done.outcome, "REJECTED");
  assert.equal(done.completedVia, "SECRET_KEY");
  assert.equal(done.output, undefined);
  assert.ok(done.error instanceof WaitpointRejectedError);
  assert.ok(done.error instanceof WaitpointTimeoutError, "code written for Trigger.dev handles it as a timeout");
  assert.deepEqual(
    { message: done.error.message, code: done.error.code, data: done.error.data },
    rejection,
  );

  assert.deepEqual(await wait.rejectToken(token.id, { message: "again" }), { success: true });
  assert.equal((await wait.retrieveToken(token)).error?.message, "card declined", "a second rejection changes nothing");

  const bare = await wait.createToken({ tags: [tag] });
  await wait.rejectToken(bare, { message: "no" });
  const error = (await wait.retrieveToken(bare)).error;
  assert.ok(error instanceof WaitpointRejectedError);
  assert.deepEqual([error.message, error.code, error.data], ["no", "WAITPOINT_REJECTED", undefined]);

  const completed = await wait.createToken({ tags: [tag] });
  await wait.completeToken(completed, { fine: true });
  const rejected = [];
  for await (const item of wait.listTokens({ tags: tag, status: "REJECTED" })) rejected.push([item.id, item.status, item.outcome]);
  assert.deepEqual(rejected, [
    [bare.id, "TIMED_OUT", "REJECTED"],
    [token.id, "TIMED_OUT", "REJECTED"],
  ]);

  await assert.rejects(wait.rejectToken(completed, { message: "" }), apiError(400, /error\.message must be 1 to 10000 characters/));
  await assert.rejects(wait.rejectToken("waitpoint_c0nosuchtoken00000000000", { message: "x" }), apiError(404, /not found/));
  await assert.rejects(
    wait.rejectToken(completed, { message: "x", reason: "y" } as Parameters<typeof wait.rejectToken>[1]),
    /wait.rejectToken\(\): `reason` is not supported by waitpoint/,
  );
});

test("heartbeatToken moves the heartbeat deadline, never the timeout; a missed heartbeat times the token out", async () => {
  const token = await wait.createToken({ timeout: "10m", heartbeatTimeout: "1s" });
  const created = await wait.retrieveToken(token);
  assert.ok(created.heartbeatDeadline && created.timeoutAt);
  await sleep(300);
  const beat = await wait.heartbeatToken(token);
  assert.ok(beat.heartbeatDeadline && beat.heartbeatDeadline > created.heartbeatDeadline, JSON.stringify(beat));
  assert.deepEqual(beat.timeoutAt, created.timeoutAt, "a heartbeat never moves the timeout");
  assert.deepEqual((await wait.retrieveToken(token)).heartbeatDeadline, beat.heartbeatDeadline);

  // No more heartbeats: the token times out within a second or so.
  const done = await finished(token.id);
  assert.deepEqual([done.status, done.outcome, done.completedVia], ["TIMED_OUT", "TIMED_OUT", "HEARTBEAT_TIMEOUT"]);
  assert.ok(done.error instanceof WaitpointTimeoutError);
  assert.ok(!(done.error instanceof WaitpointRejectedError));
  assert.equal(done.error.code, "WAITPOINT_HEARTBEAT_TIMEOUT");
  assert.match(done.error.message, /^Waitpoint timed out at .*: no heartbeat for 1s$/);

  await assert.rejects(wait.heartbeatToken(token), apiError(409, /a heartbeat keeps only a waiting token alive/));
  const plain = await wait.createToken({});
  await assert.rejects(wait.heartbeatToken(plain.id), apiError(400, /The token has no heartbeatTimeout/));
});

test("extendToken moves timeoutAt later, to a duration from now or a date, and never earlier", async () => {
  const token = await wait.createToken({ timeout: "10m" });
  const created = await wait.retrieveToken(token);
  assert.ok(created.timeoutAt);
  const byDuration = await wait.extendToken(token, "1h");
  assert.ok(byDuration.timeoutAt && byDuration.timeoutAt.getTime() > created.timeoutAt.getTime() + 45 * 60_000);
  assert.equal(byDuration.heartbeatDeadline, undefined);
  const date = new Date(Date.now() + 2 * 3_600_000);
  const byDate = await wait.extendToken(token.id, date);
  assert.deepEqual(byDate, { timeoutAt: date });
  assert.deepEqual((await wait.retrieveToken(token)).timeoutAt, date);

  await assert.rejects(wait.extendToken(token, "1m"), apiError(400, /An extend moves the timeout later/));
  await assert.rejects(wait.extendToken(token, new Date(Number.NaN)), RangeError);
  await wait.completeToken(token, {});
  await assert.rejects(wait.extendToken(token, "3h"), apiError(409, /an extend keeps only a waiting token alive/));
});
