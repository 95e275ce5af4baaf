// Compatibility test: the official @trigger.dev/sdk (v4, pinned in package.json) against a real
// `waitpoint serve` process. Run with `npm test` after `cargo build -p waitpoint`.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiError,
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  PermissionDeniedError,
  UnprocessableEntityError,
  WaitpointTimeoutError,
  auth,
  configure,
  wait,
} from "@trigger.dev/sdk";
import { SECRET_KEY, decodeJwt, postChunked, rawRequest, signJwt, startServer } from "./harness.mjs";

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const MiB = 1024 * 1024;
/** Well formed, never created. */
const UNKNOWN_ID = `waitpoint_c${"0".repeat(24)}`;

let server;
/** A token with a 1 s timeout, made first so that it has timed out by the time test 6 looks. */
let shortLived;

before(async () => {
  server = await startServer();
  configure({ baseURL: server.baseURL, secretKey: SECRET_KEY });
  shortLived = await wait.createToken({ timeout: "1s" });
});

after(async () => {
  await server?.stop();
});

// ---------------------------------------------------------------------------------------------
// helpers

const raw = (method, target, options) => rawRequest(server.baseURL, method, target, options);
const tokenPath = (id) => `/api/v1/waitpoints/tokens/${id}`;

/** The token as the server sends it (to see fields the SDK strips: outputType, completedVia…). */
async function wire(id) {
  const reply = await raw("GET", tokenPath(id));
  assert.equal(reply.status, 200, reply.text);
  return reply.json;
}

function assertTokenUrl(baseURL, token) {
  const match = token.url.match(/^(.*)\/api\/v1\/waitpoints\/tokens\/([^/]+)\/callback\/([0-9a-f]{64})$/);
  assert.ok(match, `url is <origin>/api/v1/waitpoints/tokens/<id>/callback/<64 hex>: ${token.url}`);
  assert.equal(match[1], baseURL);
  assert.equal(match[2], token.id);
}

function assertDateBetween(value, low, high, what) {
  assert.ok(value instanceof Date, `${what} is a Date, got ${value}`);
  assert.ok(
    value.getTime() >= low - SECOND && value.getTime() <= high + SECOND,
    `${what} ${value.toISOString()} is between ${new Date(low).toISOString()} and ${new Date(high).toISOString()}`,
  );
}

/** Runs `call` (an SDK call) and checks that it rejects with an ApiError of this status. */
async function expectApiError(call, { Class, status, message, maxMs }) {
  const started = performance.now();
  let error;
  try {
    await call();
  } catch (caught) {
    error = caught;
  }
  const elapsed = performance.now() - started;
  assert.ok(error, `expected the SDK call to reject with ${status}, it resolved`);
  assert.ok(error instanceof ApiError, `expected an ApiError, got ${error.name}: ${error.message}`);
  if (status !== undefined) assert.equal(error.status, status, `${error.constructor.name}: ${error.message}`);
  if (Class) assert.ok(error instanceof Class, `expected ${Class.name}, got ${error.constructor.name}: ${error.message}`);
  assert.equal(typeof error.error, "string", `the body has a string "error": ${JSON.stringify(error.body)}`);
  assert.ok(error.error.length > 0);
  if (message) assert.match(error.message, message);
  if (maxMs) assert.ok(elapsed < maxMs, `rejected after ${Math.round(elapsed)} ms (retried?), expected < ${maxMs} ms`);
  return error;
}

/** Checks a raw reply is `status` with a JSON body `{"error": "<string>"}` matching `message`. */
function assertErrorReply(reply, status, message) {
  assert.equal(reply.status, status, `expected ${status}, got ${reply.status}: ${reply.text}`);
  assert.equal(typeof reply.json?.error, "string", `the body has a string "error": ${reply.text}`);
  assert.ok(reply.json.error.length > 0);
  if (message) assert.match(reply.json.error, message);
}

async function collect(params) {
  const items = [];
  for await (const item of wait.listTokens(params)) items.push(item);
  return items;
}

// ---------------------------------------------------------------------------------------------

test("1. createToken accepts every option form; defaults are a 10m timeout and a 1h key TTL", async () => {
  const before = Date.now();
  const plain = await wait.createToken({});
  const afterCreate = Date.now();
  assert.match(plain.id, /^waitpoint_[0-9a-z]{25}$/);
  assert.equal(plain.isCached, false);
  assertTokenUrl(server.baseURL, plain);
  assert.deepEqual(Object.keys(plain).sort(), ["id", "isCached", "publicAccessToken", "url"]);
  const claims = decodeJwt(plain.publicAccessToken);
  assert.equal(claims.pub, true);
  assert.deepEqual(claims.scopes, [`write:waitpoints:${plain.id}`]);

  const got = await wait.retrieveToken(plain.id);
  assert.equal(got.id, plain.id);
  assert.equal(got.url, plain.url);
  assert.equal(got.status, "WAITING");
  assertDateBetween(got.createdAt, before, afterCreate, "createdAt");
  assert.ok(got.timeoutAt instanceof Date, "a token created without timeout still gets one (10m default)");
  assert.equal(got.timeoutAt - got.createdAt, 10 * MINUTE, "default timeout is 10m");
  assert.deepEqual(got.tags, []);
  for (const absent of ["completedAt", "idempotencyKey", "idempotencyKeyExpiresAt", "output", "error"]) {
    assert.equal(got[absent], undefined, `${absent} is not set on a fresh token`);
  }

  const noArgument = await wait.createToken();
  assert.match(noArgument.id, /^waitpoint_/);
  assert.equal((await wait.retrieveToken(noArgument)).status, "WAITING");

  for (const [timeout, ms] of [
    ["10m", 10 * MINUTE],
    ["1h30m", 90 * MINUTE],
    ["45s", 45 * SECOND],
    ["2hr", 2 * HOUR],
    ["3d", 72 * HOUR],
    ["1w", 7 * 24 * HOUR],
  ]) {
    const token = await wait.createToken({ timeout });
    const retrieved = await wait.retrieveToken(token.id);
    assert.equal(retrieved.timeoutAt - retrieved.createdAt, ms, `timeout ${timeout}`);
  }

  const at = new Date(Date.now() + 3 * HOUR + 123);
  const dated = await wait.createToken({ timeout: at });
  assert.equal((await wait.retrieveToken(dated.id)).timeoutAt.getTime(), at.getTime(), "a Date timeout is kept exactly");

  const forever = await wait.createToken({ timeout: "none" });
  assert.equal((await wait.retrieveToken(forever.id)).timeoutAt, undefined, `timeout "none" means no timeout`);

  // Idempotency: the second create returns the cached token and changes nothing.
  const first = await wait.createToken({ idempotencyKey: "order-42", idempotencyKeyTTL: "2h", timeout: "30m", tags: ["first"] });
  const second = await wait.createToken({ idempotencyKey: "order-42", idempotencyKeyTTL: "5m", timeout: "5m", tags: ["second"] });
  assert.equal(first.isCached, false);
  assert.equal(second.isCached, true);
  assert.equal(second.id, first.id);
  assert.equal(second.url, first.url);
  assert.deepEqual(decodeJwt(second.publicAccessToken).scopes, [`write:waitpoints:${first.id}`]);
  const keyed = await wait.retrieveToken(first.id);
  assert.equal(keyed.idempotencyKey, "order-42");
  assert.equal(keyed.idempotencyKeyExpiresAt - keyed.createdAt, 2 * HOUR);
  assert.equal(keyed.timeoutAt - keyed.createdAt, 30 * MINUTE, "the cached create did not change the timeout");
  assert.deepEqual(keyed.tags, ["first"], "the cached create did not change the tags");
  // ... even once the token is completed.
  await wait.completeToken(first, { done: true });
  const third = await wait.createToken({ idempotencyKey: "order-42" });
  assert.equal(third.isCached, true);
  assert.equal(third.id, first.id);

  const defaultTtl = await wait.createToken({ idempotencyKey: "order-43" });
  const defaultTtlToken = await wait.retrieveToken(defaultTtl.id);
  assert.equal(defaultTtlToken.idempotencyKey, "order-43");
  assert.equal(defaultTtlToken.idempotencyKeyExpiresAt - defaultTtlToken.createdAt, HOUR, "default key TTL is 1h");

  // On the wire: both public-access-token headers. (waitpoint signs the JWT with a per-environment
  // signing secret rather than the secret key, a deliberate difference the SDK cannot see: it
  // never verifies the token. Tokens the SDK signs itself with the secret key work, see test 5.)
  const reply = await raw("POST", "/api/v1/waitpoints/tokens", { body: { timeout: "10m" } });
  assert.equal(reply.status, 200, reply.text);
  assert.match(reply.headers.get("content-type"), /^application\/json/);
  assert.equal(reply.json.isCached, false);
  const jwt = reply.headers.get("x-trigger-jwt");
  assert.ok(jwt, "x-trigger-jwt header is sent (the SDK takes publicAccessToken from it)");
  const headerClaims = JSON.parse(reply.headers.get("x-trigger-jwt-claims"));
  assert.deepEqual(Object.keys(headerClaims).sort(), ["pub", "sub"]);
  assert.equal(headerClaims.pub, true);
  const payload = decodeJwt(jwt);
  assert.equal(payload.sub, headerClaims.sub);
  assert.equal(payload.pub, true);
  assert.deepEqual(payload.scopes, [`write:waitpoints:${reply.json.id}`]);
  assert.equal(payload.iss, "https://id.trigger.dev");
  assert.equal(payload.aud, "https://api.trigger.dev");
  assert.equal(payload.exp - payload.iat, 24 * 60 * 60);
  assert.equal(JSON.parse(Buffer.from(jwt.split(".")[0], "base64url")).alg, "HS256");

  // Tags: a string becomes a one-tag array; retrieve keeps the given order.
  const single = await wait.createToken({ tags: "solo" });
  assert.deepEqual((await wait.retrieveToken(single.id)).tags, ["solo"]);
  const several = await wait.createToken({ tags: ["zeta", "alpha", "user:123"] });
  assert.deepEqual((await wait.retrieveToken(several.id)).tags, ["zeta", "alpha", "user:123"]);
});

test("2. completeToken through the SDK; retrieveToken returns the output; first completion wins", async () => {
  const token = await wait.createToken({ timeout: "10m" });
  const before = Date.now();
  assert.deepEqual(await wait.completeToken(token, { status: "approved" }), { success: true });
  const afterComplete = Date.now();

  const got = await wait.retrieveToken(token);
  assert.equal(got.status, "COMPLETED");
  assert.deepEqual(got.output, { status: "approved" });
  assert.equal(got.error, undefined);
  assertDateBetween(got.completedAt, before, afterComplete, "completedAt");
  assert.equal(got.timeoutAt - got.createdAt, 10 * MINUTE);
  const stored = await wire(token.id);
  assert.equal(stored.output, '{"json":{"status":"approved"}}');
  assert.equal(stored.outputType, "application/super+json");
  assert.equal(stored.outputIsError, false);
  assert.equal(stored.completedVia, "SECRET_KEY");

  assert.deepEqual(await wait.completeToken(token.id, { status: "rejected" }), { success: true });
  const again = await wait.retrieveToken(token.id);
  assert.deepEqual(again.output, { status: "approved" }, "the first completion wins");
  assert.equal(again.completedAt.getTime(), got.completedAt.getTime());

  // Every kind of JSON value round-trips; a string is stored as text/plain.
  for (const value of ["plain text", 42, true, null, [1, "two", { three: 3 }], { nested: { deep: [true, false] } }]) {
    const t = await wait.createToken();
    assert.deepEqual(await wait.completeToken(t.id, value), { success: true });
    assert.deepEqual((await wait.retrieveToken(t.id)).output, value, `output ${JSON.stringify(value)}`);
  }
  const text = await wait.createToken();
  await wait.completeToken(text, "yes");
  assert.equal((await wire(text.id)).outputType, "text/plain");

  // No data at all: the SDK sends {} and the token completes without output.
  const empty = await wait.createToken();
  assert.deepEqual(await wait.completeToken(empty), { success: true });
  const emptyGot = await wait.retrieveToken(empty);
  assert.equal(emptyGot.status, "COMPLETED");
  assert.equal(emptyGot.output, undefined);
});

test("3. the documented curl form completes a token ({output} and {data})", async () => {
  for (const key of ["output", "data"]) {
    const token = await wait.createToken();
    const payload = { status: "approved", via: `curl ${key}` };
    const reply = await raw("POST", `${tokenPath(token.id)}/complete`, { body: { [key]: payload } });
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(reply.json, { success: true });
    assert.match(reply.headers.get("content-type"), /^application\/json/);
    const got = await wait.retrieveToken(token.id);
    assert.equal(got.status, "COMPLETED");
    assert.deepEqual(got.output, payload);
    assert.equal((await wire(token.id)).completedVia, "SECRET_KEY");
  }

  // The docs also allow the token's public access token as the bearer.
  const token = await wait.createToken();
  const reply = await raw("POST", `${tokenPath(token.id)}/complete`, {
    auth: token.publicAccessToken,
    body: { output: { status: "approved" } },
  });
  assert.equal(reply.status, 200, reply.text);
  assert.deepEqual((await wait.retrieveToken(token.id)).output, { status: "approved" });
  assert.equal((await wire(token.id)).completedVia, "PUBLIC_ACCESS_TOKEN");
});

test("4. a POST to token.url (no credentials) completes the token with the body", async () => {
  const token = await wait.createToken();
  const payload = { id: "pred_1", status: "succeeded", output: ["https://x.test/1.png"], metrics: { predict_time: 1.5 } };
  const reply = await fetch(token.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
  assert.equal(reply.status, 200);
  assert.deepEqual(await reply.json(), { success: true });
  const got = await wait.retrieveToken(token.id);
  assert.equal(got.status, "COMPLETED");
  assert.deepEqual(got.output, payload);
  assert.ok(got.completedAt instanceof Date);
  assert.equal((await wire(token.id)).completedVia, "CALLBACK_URL");

  const late = await fetch(token.url, { method: "POST", body: JSON.stringify({ late: true }) });
  assert.equal(late.status, 200);
  assert.deepEqual(await late.json(), { success: true });
  assert.deepEqual((await wait.retrieveToken(token.id)).output, payload, "the first completion wins");

  const empty = await wait.createToken();
  const emptyReply = await fetch(empty.url, { method: "POST" });
  assert.equal(emptyReply.status, 200);
  assert.deepEqual((await wait.retrieveToken(empty.id)).output, {}, "no body completes with {}");

  const text = await wait.createToken();
  const textReply = await fetch(text.url, { method: "POST", headers: { "content-type": "text/plain" }, body: "hello, world" });
  assert.equal(textReply.status, 200);
  assert.equal((await wait.retrieveToken(text.id)).output, "hello, world", "non-JSON text completes with the text");
});

test("5. the public access token completes its own token only, and cannot create, list or retrieve", async () => {
  const mine = await wait.createToken();
  const other = await wait.createToken();

  const result = await auth.withAuth({ accessToken: mine.publicAccessToken }, () =>
    wait.completeToken(mine.id, { approvedBy: "browser" }),
  );
  assert.deepEqual(result, { success: true });
  const got = await wait.retrieveToken(mine.id);
  assert.equal(got.status, "COMPLETED");
  assert.deepEqual(got.output, { approvedBy: "browser" });
  assert.equal((await wire(mine.id)).completedVia, "PUBLIC_ACCESS_TOKEN");

  // configure({ accessToken }) works the same way.
  const third = await wait.createToken();
  configure({ baseURL: server.baseURL, accessToken: third.publicAccessToken });
  try {
    assert.deepEqual(await wait.completeToken(third.id, "ok"), { success: true });
  } finally {
    configure({ baseURL: server.baseURL, secretKey: SECRET_KEY });
  }
  assert.equal((await wait.retrieveToken(third.id)).output, "ok");

  const asMine = (call) => () => auth.withAuth({ accessToken: mine.publicAccessToken }, call);
  const denied = await expectApiError(asMine(() => wait.completeToken(other.id, { sneaky: true })), {
    Class: PermissionDeniedError,
    status: 403,
    message: /Unauthorized/,
    maxMs: 2 * SECOND,
  });
  assert.equal(denied.code, "unauthorized");
  assert.equal((await wait.retrieveToken(other.id)).status, "WAITING");

  for (const [what, call] of [
    ["create", () => wait.createToken()],
    ["list", () => wait.listTokens()],
    ["retrieve", () => wait.retrieveToken(mine.id)],
  ]) {
    const error = await expectApiError(asMine(call), { Class: AuthenticationError, status: 401, maxMs: 2 * SECOND });
    assert.match(error.message, /secret key/, `${what}: ${error.message}`);
  }

  // A token signed the way the SDK self-signs (when a server sends only x-trigger-jwt-claims) works too.
  const selfSigned = await wait.createToken();
  const now = Math.floor(Date.now() / 1000);
  const sdkStyle = signJwt(
    {
      sub: decodeJwt(selfSigned.publicAccessToken).sub,
      pub: true,
      scopes: [`write:waitpoints:${selfSigned.id}`],
      iss: "https://id.trigger.dev",
      aud: "https://api.trigger.dev",
      iat: now,
      exp: now + 24 * 60 * 60,
    },
    SECRET_KEY,
  );
  assert.deepEqual(await auth.withAuth({ accessToken: sdkStyle }, () => wait.completeToken(selfSigned, 7)), {
    success: true,
  });
  assert.equal((await wait.retrieveToken(selfSigned)).output, 7);

  // Browsers: the CORS preflight of the complete route.
  const preflight = await fetch(`${server.baseURL}${tokenPath(other.id)}/complete`, {
    method: "OPTIONS",
    headers: {
      origin: "https://app.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type",
    },
  });
  assert.equal(preflight.status, 200);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(preflight.headers.get("access-control-allow-methods"), /POST/);
  assert.match(preflight.headers.get("access-control-allow-headers"), /authorization/i);

  // A tampered token is refused too.
  const tampered = `${other.publicAccessToken.slice(0, -4)}AAAA`;
  await expectApiError(() => auth.withAuth({ accessToken: tampered }, () => wait.completeToken(other.id, 1)), {
    Class: AuthenticationError,
    status: 401,
  });
  assert.equal((await wait.retrieveToken(other.id)).status, "WAITING");
});

test("6. retrieveToken: a timed-out token carries a WaitpointTimeoutError; an unknown id is a fast 404", async () => {
  const deadline = Date.now() + 10 * SECOND;
  let got = await wait.retrieveToken(shortLived.id);
  while (got.status === "WAITING" && Date.now() < deadline) {
    await sleep(100);
    got = await wait.retrieveToken(shortLived.id);
  }
  assert.equal(got.status, "TIMED_OUT");
  assert.equal(got.timeoutAt - got.createdAt, SECOND);
  assert.ok(got.completedAt instanceof Date);
  assert.ok(got.completedAt >= got.timeoutAt, "completed at or after the timeout");
  assert.ok(got.completedAt - got.timeoutAt < 2 * SECOND, "the timeout fired promptly");
  assert.equal(got.output, undefined);
  assert.ok(got.error instanceof WaitpointTimeoutError, `error is a WaitpointTimeoutError: ${got.error}`);
  assert.ok(got.error instanceof Error);
  assert.ok(got.error.message.startsWith("Waitpoint timed out at"), got.error.message);
  assert.equal(got.error.message, `Waitpoint timed out at ${got.timeoutAt.toISOString()}`);
  const stored = await wire(shortLived.id);
  assert.equal(stored.outputIsError, true);
  assert.equal(stored.outputType, "application/json");
  assert.equal(stored.completedVia, "TIMEOUT");
  assert.deepEqual(JSON.parse(stored.output), { code: "TRIGGER_WAITPOINT_TIMEOUT", message: got.error.message });

  // Completing after the timeout succeeds and changes nothing.
  assert.deepEqual(await wait.completeToken(shortLived.id, { late: true }), { success: true });
  assert.equal((await fetch(shortLived.url, { method: "POST", body: "{}" })).status, 200);
  assert.equal((await wait.retrieveToken(shortLived.id)).status, "TIMED_OUT");

  await expectApiError(() => wait.retrieveToken(UNKNOWN_ID), {
    Class: NotFoundError,
    status: 404,
    message: /^Waitpoint not found$/,
    maxMs: 2 * SECOND,
  });
  await expectApiError(() => wait.completeToken(UNKNOWN_ID, { x: 1 }), {
    Class: NotFoundError,
    status: 404,
    message: /Waitpoint not found/,
    maxMs: 2 * SECOND,
  });

  // wait.forToken needs a task run; outside one the SDK refuses without calling the server.
  await assert.rejects(wait.forToken(shortLived.id), /inside a task/);
});

test("6b. a rejected token (waitpoint's own reject) reads as a failed token through the SDK", async () => {
  const token = await wait.createToken({ tags: ["rejected-compat"] });
  const reply = await raw("POST", `${tokenPath(token.id)}/reject`, {
    body: { error: { message: "card declined", code: "CARD_DECLINED", data: { attempt: 2 } } },
  });
  assert.equal(reply.status, 200, reply.text);
  const got = await wait.retrieveToken(token.id);
  assert.equal(got.status, "TIMED_OUT", "Trigger.dev's SDK reads every error outcome as TIMED_OUT");
  assert.equal(got.output, undefined);
  assert.ok(got.error instanceof WaitpointTimeoutError, `error is the SDK's error: ${got.error}`);
  assert.equal(got.error.message, "card declined");
  const stored = await wire(token.id);
  assert.equal(stored.outcome, "REJECTED", "waitpoint's own field tells the true outcome");
  assert.equal(stored.outputIsError, true);
  assert.deepEqual(JSON.parse(stored.output), { code: "CARD_DECLINED", message: "card declined", data: { attempt: 2 } });
  const timedOut = await collect({ status: "TIMED_OUT", tags: ["rejected-compat"] });
  assert.deepEqual(
    timedOut.map((item) => [item.id, item.status]),
    [[token.id, "TIMED_OUT"]],
    "a TIMED_OUT filter finds it",
  );
  // Completing it afterwards succeeds and changes nothing: the first outcome wins.
  assert.deepEqual(await wait.completeToken(token.id, { late: true }), { success: true });
  assert.equal((await wire(token.id)).outcome, "REJECTED");
});

test("6c. a token with an outputSchema (waitpoint's own): the SDK's completions must fit it", async () => {
  const created = await raw("POST", "/api/v1/waitpoints/tokens", {
    body: { outputSchema: { type: "object", properties: { status: { enum: ["approved", "rejected"] } }, required: ["status"] } },
  });
  assert.equal(created.status, 200, created.text);
  const id = created.json.id;
  await expectApiError(() => wait.completeToken(id, { status: "maybe" }), {
    status: 422,
    message: /outputSchema.*\/status/,
    maxMs: 2 * SECOND,
  });
  assert.equal((await wait.retrieveToken(id)).status, "WAITING", "a refused completion changes nothing");
  assert.deepEqual(await wait.completeToken(id, { status: "approved" }), { success: true });
  const got = await wait.retrieveToken(id);
  assert.equal(got.status, "COMPLETED");
  assert.deepEqual(got.output, { status: "approved" });
});

test("6d. a token with a heartbeatTimeout (waitpoint's own) that misses its heartbeat reads as timed out", async () => {
  const created = await raw("POST", "/api/v1/waitpoints/tokens", { body: { heartbeatTimeout: "1s" } });
  assert.equal(created.status, 200, created.text);
  const { id, heartbeatUrl } = created.json;
  const beat = await raw("POST", heartbeatUrl, { auth: null });
  assert.equal(beat.status, 200, beat.text);
  assert.ok(beat.json.heartbeatDeadline, "the answer says until when");
  const deadline = Date.now() + 5 * SECOND;
  let got = await wait.retrieveToken(id);
  while (got.status === "WAITING" && Date.now() < deadline) {
    await sleep(100);
    got = await wait.retrieveToken(id);
  }
  assert.equal(got.status, "TIMED_OUT");
  assert.ok(got.error instanceof WaitpointTimeoutError, `error is the SDK's error: ${got.error}`);
  assert.match(got.error.message, /no heartbeat for 1s/);
  const stored = await wire(id);
  assert.equal(stored.completedVia, "HEARTBEAT_TIMEOUT");
  assert.equal(JSON.parse(stored.output).code, "WAITPOINT_HEARTBEAT_TIMEOUT");
});

test("7. listTokens: every filter, newest first, auto-pagination across pages", async () => {
  // A server of its own, so that counts are exact.
  const listServer = await startServer();
  try {
    await auth.withAuth({ baseURL: listServer.baseURL, accessToken: SECRET_KEY }, () => checkLists(listServer.baseURL));
  } finally {
    const exit = await listServer.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, "the list server exits 0 on SIGTERM");
  }
});

async function checkLists(baseURL) {
  const N = 36;
  const kind = (i) => (i % 6 === 1 ? "TIMED_OUT" : i % 5 === 0 ? "COMPLETED" : "WAITING");
  const startedAt = Date.now();
  const created = [];
  for (let i = 0; i < N; i++) {
    const options = { tags: [`n:${i}`, `grp:${i % 3}`] };
    if (i % 4 === 0) options.idempotencyKey = `key-${i}`;
    if (kind(i) === "TIMED_OUT") options.timeout = "1s";
    const token = await wait.createToken(options);
    if (kind(i) === "COMPLETED") await wait.completeToken(token, { i });
    created.push({ ...token, i, status: kind(i), tags: options.tags, key: options.idempotencyKey });
  }
  const timedOut = created.filter((t) => t.status === "TIMED_OUT").length;
  const deadline = Date.now() + 10 * SECOND;
  while ((await wait.listTokens({ status: "TIMED_OUT", limit: 100 })).data.length < timedOut) {
    assert.ok(Date.now() < deadline, "the 1s tokens time out");
    await sleep(100);
  }
  const newest = created.toReversed();
  const ids = newest.map((t) => t.id);

  // Everything, 5 per page: 8 pages, newest first, no duplicates, documented fields.
  const pages = [];
  for await (const page of (await wait.listTokens({ limit: 5 })).iterPages()) pages.push(page.data.map((t) => t.id));
  assert.equal(pages.length, 8);
  assert.ok(pages.every((page) => page.length === 5 || page === pages.at(-1)));
  assert.deepEqual(pages.flat(), ids);

  const all = await collect({ limit: 5 });
  assert.deepEqual(all.map((t) => t.id), ids, "newest first");
  assert.equal(new Set(all.map((t) => t.id)).size, N, "no duplicates");
  const createdAt = new Map();
  const byId = new Map(created.map((t) => [t.id, t]));
  for (const [index, item] of all.entries()) {
    const expected = byId.get(item.id);
    const label = `token ${expected.i}`;
    assert.equal(item.url, expected.url, label);
    assertTokenUrl(baseURL, item);
    assert.equal(item.status, expected.status, label);
    assert.deepEqual(item.tags, [`grp:${expected.i % 3}`, `n:${expected.i}`], `${label}: tags sorted`);
    assertDateBetween(item.createdAt, startedAt, Date.now(), `${label} createdAt`);
    if (index > 0) assert.ok(item.createdAt <= all[index - 1].createdAt, `${label}: newest first`);
    createdAt.set(item.id, item.createdAt.getTime());
    assert.ok(item.timeoutAt instanceof Date, label);
    assert.equal(item.timeoutAt - item.createdAt, expected.status === "TIMED_OUT" ? SECOND : 10 * MINUTE, label);
    if (expected.status === "WAITING") {
      assert.equal(item.completedAt, undefined, `${label}: no completedAt while waiting`);
    } else {
      assert.ok(item.completedAt instanceof Date && item.completedAt >= item.createdAt, `${label}: completedAt`);
    }
    if (expected.key) {
      assert.equal(item.idempotencyKey, expected.key, label);
      assert.equal(item.idempotencyKeyExpiresAt - item.createdAt, HOUR, label);
    } else {
      assert.equal(item.idempotencyKey, undefined, `${label}: only user keys are listed`);
      assert.equal(item.idempotencyKeyExpiresAt, undefined, label);
    }
    assert.ok(!("output" in item), `${label}: the list has no output`);
  }

  async function expectIds(params, keep) {
    const got = (await collect(params)).map((t) => t.id);
    const want = newest.filter(keep).map((t) => t.id);
    assert.deepEqual(got, want, `listTokens(${JSON.stringify(params)})`);
    return want.length;
  }
  const is = (...statuses) => (t) => statuses.includes(t.status);

  // status
  assert.equal(await expectIds({ status: "WAITING", limit: 5 }, is("WAITING")), 23);
  assert.equal(await expectIds({ status: "COMPLETED" }, is("COMPLETED")), 7);
  assert.equal(await expectIds({ status: "TIMED_OUT", limit: 5 }, is("TIMED_OUT")), 6);
  assert.equal(await expectIds({ status: ["COMPLETED"], limit: 5 }, is("COMPLETED")), 7);
  assert.equal(await expectIds({ status: ["WAITING", "TIMED_OUT"], limit: 5 }, is("WAITING", "TIMED_OUT")), 29);
  assert.equal(await expectIds({ status: ["COMPLETED", "TIMED_OUT"], limit: 5 }, is("COMPLETED", "TIMED_OUT")), 13);
  assert.equal(await expectIds({ status: ["WAITING", "COMPLETED", "TIMED_OUT"], limit: 5 }, () => true), N);

  // idempotency key
  assert.equal(await expectIds({ idempotencyKey: "key-8" }, (t) => t.i === 8), 1);
  assert.equal(await expectIds({ idempotencyKey: "key-9" }, () => false), 0);

  // tags: OR semantics, exact match
  assert.equal(await expectIds({ tags: "grp:1", limit: 5 }, (t) => t.i % 3 === 1), 12);
  assert.equal(await expectIds({ tags: ["n:3", "n:4"] }, (t) => t.i === 3 || t.i === 4), 2);
  assert.equal(await expectIds({ tags: ["grp:0", "n:4"], limit: 5 }, (t) => t.i % 3 === 0 || t.i === 4), 13);
  assert.equal(await expectIds({ tags: "grp" }, () => false), 0);

  // createdAt: period, from and to (Date or epoch ms), inclusive
  assert.equal(await expectIds({ period: "1h", limit: 5 }, () => true), N);
  const fromMs = createdAt.get(created[10].id);
  const toMs = createdAt.get(created[25].id);
  const inRange = (t) => createdAt.get(t.id) >= fromMs && createdAt.get(t.id) <= toMs;
  const rangeCount = await expectIds({ from: new Date(fromMs), to: toMs, limit: 5 }, inRange);
  assert.ok(rangeCount >= 16 && rangeCount < N, `from/to selects tokens 10..25 (${rangeCount})`);
  await expectIds({ from: fromMs, to: new Date(toMs), limit: 5 }, inRange);
  await expectIds({ from: new Date(fromMs) }, (t) => createdAt.get(t.id) >= fromMs);
  await expectIds({ to: toMs, limit: 5 }, (t) => createdAt.get(t.id) <= toMs);
  await expectIds({ period: "1h", from: fromMs, limit: 5 }, (t) => createdAt.get(t.id) >= fromMs);
  await expectIds({ from: Date.now() + HOUR }, () => false);

  // filters combine with AND
  await expectIds({ status: "WAITING", tags: ["grp:2"], limit: 2 }, (t) => t.status === "WAITING" && t.i % 3 === 2);
  assert.equal(await expectIds({ status: ["WAITING", "TIMED_OUT"], idempotencyKey: "key-4" }, (t) => t.i === 4), 1);
  assert.equal(await expectIds({ status: "WAITING", idempotencyKey: "key-0" }, () => false), 0);
  await expectIds(
    { status: "COMPLETED", tags: "grp:0", from: new Date(fromMs), to: new Date(toMs) },
    (t) => t.status === "COMPLETED" && t.i % 3 === 0 && inRange(t),
  );

  // One page at a time.
  const first = await wait.listTokens({ limit: 5 });
  assert.deepEqual(first.data.map((t) => t.id), ids.slice(0, 5));
  assert.equal(first.hasNextPage(), true);
  assert.equal(first.hasPreviousPage(), false);
  const second = await first.getNextPage();
  assert.deepEqual(second.data.map((t) => t.id), ids.slice(5, 10));
  assert.equal(second.hasPreviousPage(), true);
  const back = await second.getPreviousPage();
  assert.deepEqual(back.data.map((t) => t.id), ids.slice(0, 5));
  const waiting = newest.filter(is("WAITING")).map((t) => t.id);
  const waitingFirst = await wait.listTokens({ status: "WAITING", limit: 5 });
  const waitingSecond = await waitingFirst.getNextPage();
  assert.deepEqual(waitingSecond.data.map((t) => t.id), waiting.slice(5, 10), "getNextPage keeps the filters");

  const defaultPage = await wait.listTokens();
  assert.equal(defaultPage.data.length, 25, "default page size 25");
  assert.equal(defaultPage.hasNextPage(), true);
  const whole = await wait.listTokens({ limit: 100 });
  assert.deepEqual(whole.data.map((t) => t.id), ids);
  assert.equal(whole.hasNextPage(), false);
  assert.deepEqual(whole.pagination, {});
}

test("8. bad input gets a clear 4xx, through the SDK and over raw HTTP", async () => {
  const victim = await wait.createToken();
  const countBefore = (await collect({ limit: 100 })).length;
  let accepted = 0;

  // Credentials.
  const wrongKey = (call) => () => auth.withAuth({ accessToken: "tr_dev_WrongWrongWrongWrongWrong0" }, call);
  for (const call of [
    () => wait.createToken(),
    () => wait.listTokens(),
    () => wait.retrieveToken(victim.id),
    () => wait.completeToken(victim.id, 1),
  ]) {
    await expectApiError(wrongKey(call), { Class: AuthenticationError, status: 401, message: /API key/, maxMs: 2 * SECOND });
  }
  for (const [method, target] of [
    ["POST", "/api/v1/waitpoints/tokens"],
    ["GET", "/api/v1/waitpoints/tokens"],
    ["GET", tokenPath(victim.id)],
    ["POST", `${tokenPath(victim.id)}/complete`],
  ]) {
    const body = method === "POST" ? {} : undefined;
    assertErrorReply(await raw(method, target, { auth: null, body }), 401, /Authorization: Bearer/);
  }

  // Create, through the SDK.
  const create = (options) => () => wait.createToken(options);
  const eleven = Array.from({ length: 11 }, (_, i) => `t${i}`);
  await expectApiError(create({ tags: eleven }), { Class: UnprocessableEntityError, status: 422, message: /10 tags/ });
  await expectApiError(create({ tags: ["x".repeat(128)] }), { Class: BadRequestError, status: 400, message: /128/ });
  await wait.createToken({ tags: ["x".repeat(127)] });
  accepted++;
  await expectApiError(create({ idempotencyKey: "k".repeat(2049) }), { Class: BadRequestError, status: 400, message: /2048/ });
  await wait.createToken({ idempotencyKey: "k".repeat(2048) });
  accepted++;
  const soon = await expectApiError(create({ timeout: "soon" }), { Class: BadRequestError, status: 400, message: /soon/ });
  assert.match(soon.message, /10m/, "the message shows a valid example");
  await expectApiError(create({ timeout: new Date(Date.now() - MINUTE) }), { Class: BadRequestError, status: 400, message: /past/ });
  await expectApiError(create({ idempotencyKey: "k", idempotencyKeyTTL: "forever" }), {
    Class: BadRequestError,
    status: 400,
    message: /idempotencyKeyTTL/,
  });
  await expectApiError(create({ timout: "10m" }), { Class: BadRequestError, status: 400, message: /timout/ });
  await expectApiError(create({ tags: ["a"], padding: "y".repeat(11 * 1024) }), { status: 413, message: /too large/ });

  // Create, raw bodies.
  const createRaw = (body) => raw("POST", "/api/v1/waitpoints/tokens", { body });
  assertErrorReply(await createRaw(""), 400, /empty/);
  assertErrorReply(await createRaw("{not json"), 400, /Invalid JSON/);
  assertErrorReply(await createRaw("[]"), 400, /JSON object/);
  assertErrorReply(await createRaw("null"), 400, /JSON object/);
  assertErrorReply(await createRaw('"10m"'), 400, /JSON object/);

  // Complete.
  const completeRaw = (body) => raw("POST", `${tokenPath(victim.id)}/complete`, { body });
  assertErrorReply(await completeRaw(""), 400, /empty/);
  assertErrorReply(await completeRaw("nope"), 400, /Invalid JSON/);
  assertErrorReply(await completeRaw("[1]"), 400, /JSON object/);
  assertErrorReply(await completeRaw("null"), 400, /JSON object/);
  assertErrorReply(await completeRaw('{"status":"approved"}'), 400, /"data"/);
  assertErrorReply(await completeRaw('{"data":1,"output":2}'), 400, /only one/);
  await expectApiError(() => wait.completeToken(UNKNOWN_ID, 1), { Class: NotFoundError, status: 404, maxMs: 2 * SECOND });

  // A malformed id is a 4xx, never a 500 (which the SDK would retry for ~9 s).
  for (const call of [() => wait.retrieveToken("waitpoint_a_b"), () => wait.completeToken("waitpoint_a_b", 1)]) {
    const error = await expectApiError(call, { maxMs: 2 * SECOND });
    assert.ok([400, 404].includes(error.status), `${error.status}: ${error.message}`);
  }

  // Callback URL.
  const [base, hash] = [victim.url.slice(0, victim.url.lastIndexOf("/")), victim.url.split("/").at(-1)];
  assertErrorReply(await raw("POST", `${base}/${"0".repeat(64)}`, { auth: null, body: {} }), 401, /hash doesn't match/);
  const otherToken = await wait.createToken();
  accepted++;
  const otherHash = otherToken.url.split("/").at(-1);
  assertErrorReply(await raw("POST", `${base}/${otherHash}`, { auth: null, body: {} }), 401, /hash/);
  const chunked = await postChunked(victim.url, ['{"a":', "1}"]);
  assertErrorReply(chunked, 411, /Content-Length/);
  assertErrorReply(await raw("POST", `${tokenPath(UNKNOWN_ID)}/callback/${hash}`, { auth: null, body: {} }), 404, /Waitpoint not found/);

  // List filters.
  await expectApiError(() => wait.listTokens({ status: "FOO" }), { Class: BadRequestError, status: 400, message: /FOO/ });
  await expectApiError(() => wait.listTokens({ limit: 101 }), { Class: BadRequestError, status: 400, message: /page\[size\]/ });
  await expectApiError(() => wait.listTokens({ from: "last week" }), { Class: BadRequestError, status: 400 });
  await expectApiError(() => wait.listTokens({ after: "not a cursor" }), { Class: BadRequestError, status: 400 });
  // limit: 0 is falsy, so the SDK does not send it; the server sees it only over raw HTTP.
  assertErrorReply(await raw("GET", "/api/v1/waitpoints/tokens?page[size]=0"), 400, /page\[size\]/);
  assertErrorReply(await raw("GET", "/api/v1/waitpoints/tokens?page[size]=101"), 400, /page\[size\]/);
  assertErrorReply(await raw("GET", "/api/v1/waitpoints/tokens?filter[status]=FOO"), 400, /Invalid status values: FOO/);
  assertErrorReply(await raw("GET", "/api/v1/waitpoints/tokens?foo=1"), 400, /foo/);

  // Wrong method.
  const put = await raw("PUT", "/api/v1/waitpoints/tokens", { body: {} });
  assertErrorReply(put, 405, /Method not allowed/);

  // None of the above changed anything.
  assert.equal((await wait.retrieveToken(victim.id)).status, "WAITING");
  assert.equal((await collect({ limit: 100 })).length, countBefore + accepted, "only the valid creates made tokens");
});

test("8b. an over-limit body gets a clean 413, not a connection reset", async () => {
  const token = await wait.createToken();
  // The server may answer 413 from the Content-Length before reading the body, but it must then
  // still read (drain) the body, as Node (Trigger.dev's server) does: a server that closes the
  // connection while the client is still sending makes fetch fail with EPIPE/ECONNRESET instead
  // of returning the 413, and the SDK then retries (1 s, 1.6 s, ...) or gives up with
  // ApiConnectionError.
  const outcomes = [];
  const expected = [];
  for (const size of [3 * MiB, 4 * MiB, 4 * MiB, 4 * MiB, 4 * MiB]) {
    const text = "x".repeat(size);
    for (const [route, target, sent, auth, limit] of [
      ["complete", `${tokenPath(token.id)}/complete`, JSON.stringify({ data: text }), SECRET_KEY, 3 * MiB],
      ["callback", token.url, JSON.stringify(text), null, 3 * MiB],
      ["create", "/api/v1/waitpoints/tokens", JSON.stringify({ tags: text }), SECRET_KEY, 10 * 1024],
    ]) {
      const label = `POST ${sent.length} bytes to ${route}`;
      try {
        const reply = await raw("POST", target, { auth, body: sent });
        outcomes.push(`${label}: ${reply.status} ${reply.json?.error}`);
      } catch (error) {
        outcomes.push(`${label}: ${error.message} (${error.cause?.code ?? error.cause?.message})`);
      }
      expected.push(`${label}: 413 Request body too large: the limit is ${limit} bytes`);
    }
  }
  assert.deepEqual(outcomes, expected, "every over-limit POST is answered 413");

  // Through the SDK: one request each, no retry.
  for (const size of [3 * MiB, 4 * MiB, 4 * MiB]) {
    await expectApiError(() => wait.completeToken(token.id, "x".repeat(size)), {
      status: 413,
      message: /too large/,
      maxMs: 900,
    });
  }
  assert.equal((await wait.retrieveToken(token.id)).status, "WAITING");
});

test("9. the server exits 0 on SIGTERM", async () => {
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM; output:\n${server.output()}`);
});
