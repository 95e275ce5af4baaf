// Replays the shared journal fixtures (tests/journals, described in its README) through the
// public `wait` API, with no server: every recorded operation must return its recorded result,
// and divergence must fail naming both operations.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

import {
  ApiError,
  NonDeterminismError,
  type WaitSetItem,
  type WaitSetPromise,
  WaitpointTimeoutError,
  wait,
} from "../src/index.js";
import { RunExecution, type RunHost, runScope } from "../src/journal.js";
import { listItem, retrievedToken } from "../src/tokens.js";
import type { JournalEntry, PageWire, TokenDetailWire, TokenItemWire } from "../src/wire.js";
import { PACKAGE } from "./harness.js";

const FIXTURES = path.resolve(PACKAGE, "../../tests/journals");

type Call = { call: string; returns: unknown } & Record<string, unknown>;

interface Fixture {
  description: string;
  journal: JournalEntry[];
  calls: Call[];
  outcome: "replayed" | "diverges" | "returnsEarly";
  divergesAt?: number;
  mentions?: string[];
}

/** A host for a replay only: any live call is a failure of the fixture. */
function replayOnly(): RunHost {
  const live = (): never => {
    throw new Error("a replay of a fixture performed an operation live");
  };
  return {
    protocol: {
      record: live,
      createToken: live,
      wait: live,
      completeToken: live,
      rejectToken: live,
      heartbeatToken: live,
      extendToken: live,
      retrieveToken: live,
      listTokens: live,
    },
    park: live,
    now: live,
  };
}

function field(call: Call, name: string): unknown {
  assert.ok(name in call, `call ${call.call} needs ${name}`);
  return call[name];
}

/** The items of a set call: `{ token }`, `{ ms }` or `{ until }` each. */
function setItems(call: Call): WaitSetItem[] {
  return (field(call, "waits") as { token?: string; ms?: number; until?: string }[]).map((item) => {
    if (item.token !== undefined) return item.token;
    if (item.ms !== undefined) return { seconds: item.ms / 1000 };
    if (item.until !== undefined) return new Date(item.until);
    return assert.fail(`a wait this test does not know: ${JSON.stringify(item)}`);
  });
}

/**
 * Checks a set wait against `returns` (a timeout by its message, as a WaitpointTimeoutError), and
 * its `unwrap()`: the waitpoints, or the error `unwrapError` says.
 */
async function checkSet(call: Call, waiting: WaitSetPromise): Promise<void> {
  const result = await waiting;
  const returned = {
    ok: result.ok,
    waitpoints: result.waitpoints.map((member) => {
      if (member.ok === true) return { id: member.id, ok: true, output: member.output };
      if (member.ok === false) {
        assert.ok(member.error instanceof WaitpointTimeoutError);
        return { id: member.id, ok: false, error: { message: member.error.message } };
      }
      return { id: member.id, pending: true };
    }),
  };
  const expected = structuredClone(call.returns) as { waitpoints: { ok?: boolean; error?: { message: string } }[] };
  for (const member of expected.waitpoints) {
    if (member.ok === false && member.error) member.error = { message: member.error.message };
  }
  assert.deepEqual(returned, expected);
  if (typeof call.unwrapError === "string") {
    await assert.rejects(waiting.unwrap(), { name: "WaitpointTimeoutError", message: call.unwrapError });
  } else {
    assert.deepEqual(await waiting.unwrap(), result.waitpoints);
  }
}

/** Performs `call` through the public API; returns what it gave, compared with `returns`. */
async function perform(call: Call): Promise<void> {
  const returns = call.returns;
  switch (call.call) {
    case "createToken":
      assert.deepEqual(await wait.createToken(field(call, "options") as object), returns);
      return;
    case "step": {
      const value = await wait.step(field(call, "name") as string, () => {
        throw new Error("a recorded step ran again");
      });
      assert.deepEqual(value, returns);
      return;
    }
    case "forToken": {
      const waiting = wait.forToken(field(call, "token") as string);
      const result = await waiting;
      const expected = returns as { ok: boolean; output?: unknown; error?: { message: string } };
      if (expected.ok) {
        assert.deepEqual(result, { ok: true, output: expected.output });
      } else {
        assert.ok(!result.ok, "the token timed out");
        assert.ok(result.error instanceof WaitpointTimeoutError);
        assert.equal(result.error.message, expected.error?.message);
        await assert.rejects(waiting.unwrap(), { name: "WaitpointTimeoutError", message: expected.error?.message });
      }
      return;
    }
    case "forAny":
      await checkSet(call, wait.forAny(setItems(call)));
      return;
    case "forAll":
      await checkSet(call, wait.forAll(setItems(call)));
      return;
    case "forAtLeast":
      await checkSet(call, wait.forAtLeast(field(call, "needed") as number, setItems(call)));
      return;
    case "waitFor":
      assert.equal(await wait.for({ seconds: (field(call, "ms") as number) / 1000 }), undefined);
      return;
    case "waitUntil":
      assert.equal(await wait.until({ date: new Date(field(call, "until") as string) }), undefined);
      return;
    case "completeToken":
      assert.deepEqual(await wait.completeToken(field(call, "token") as string, field(call, "output")), returns);
      return;
    case "retrieveToken":
      assert.deepEqual(
        await wait.retrieveToken(field(call, "token") as string),
        retrievedToken(returns as TokenDetailWire),
      );
      return;
    case "listTokens": {
      const after = field(call, "after") as string | null;
      const page = await wait.listTokens(after === null ? {} : { after });
      const expected = returns as PageWire<TokenItemWire>;
      assert.deepEqual(page.data, expected.data.map(listItem));
      assert.deepEqual(page.pagination, expected.pagination);
      return;
    }
    case "now":
      assert.equal((await wait.now()).toISOString(), returns);
      return;
    case "randomU64":
      assert.equal(await wait.random(), Number(BigInt(returns as string) >> 11n) / 2 ** 53);
      return;
    case "uuid":
      assert.equal(await wait.uuid(), returns);
      return;
    default:
      assert.fail(`unknown call ${call.call}`);
  }
}

/** Replays `fixture` in a new execution of a run whose journal it is. */
async function replay(fixture: Fixture): Promise<void> {
  const run = new RunExecution(
    { runId: "run_cfixture000000000000000000", taskId: "fixture", attempt: 1, epoch: 1, journal: fixture.journal },
    replayOnly(),
  );
  await runScope.run(run, async () => {
    for (const [index, call] of fixture.calls.entries()) {
      if (fixture.outcome === "diverges" && index === fixture.divergesAt) {
        const error = await perform(call).then(
          () => assert.fail(`call ${index} (${call.call}) did not diverge`),
          (thrown: unknown) => thrown,
        );
        assert.ok(error instanceof NonDeterminismError, String(error));
        for (const mention of fixture.mentions ?? []) assert.ok(error.message.includes(mention), error.message);
        await assert.rejects(perform(call), NonDeterminismError, "a diverged run stays failed");
        return;
      }
      await perform(call);
    }
  });
  if (fixture.outcome !== "diverges") {
    assert.equal(run.unreplayed, fixture.outcome === "returnsEarly", "whether the journal was replayed to its end");
  }
}

const names = readdirSync(FIXTURES).filter((name) => name.endsWith(".json")).sort();

test("the fixture folder holds fixtures", () => {
  assert.ok(names.length >= 10, names.join(", "));
});

for (const name of names) {
  const fixture = JSON.parse(readFileSync(path.join(FIXTURES, name), "utf8")) as Fixture;
  test(`journal ${name}: ${fixture.description}`, async () => {
    await replay(fixture);
    // A run replayed again (another resume, another worker) gets the same answers again.
    await replay(fixture);
  });
}

// Not a shared fixture (the Rust SDK's run context has no reject, heartbeat or extend): the
// TypeScript SDK records them as steps named after the call and the token, refusals included.
test("a replay of rejectToken, heartbeatToken and extendToken returns what was recorded, refusals included, and sends nothing", async () => {
  const token = "waitpoint_cjournal00000000000000000";
  const journal: JournalEntry[] = [
    { seq: 0, kind: "STEP", name: `wait.rejectToken ${token}`, result: { success: true } },
    {
      seq: 1,
      kind: "STEP",
      name: `wait.heartbeatToken ${token}`,
      result: { success: true, timeoutAt: "2030-01-01T00:00:00.000Z", heartbeatDeadline: "2029-01-01T00:00:30.000Z" },
    },
    { seq: 2, kind: "STEP", name: `wait.extendToken ${token}`, result: { success: true, timeoutAt: "2031-01-01T00:00:00.000Z" } },
    {
      seq: 3,
      kind: "STEP",
      name: `wait.heartbeatToken ${token}`,
      result: { refused: { status: 409, message: "The token is REJECTED (SECRET_KEY): a heartbeat keeps only a waiting token alive" } },
    },
  ];
  const start = { runId: "run_cjournal000000000000000000", taskId: "fixture", attempt: 1, epoch: 1, journal };
  const run = new RunExecution(start, replayOnly());
  await runScope.run(run, async () => {
    assert.deepEqual(await wait.rejectToken(token, { message: "no" }), { success: true });
    assert.deepEqual(await wait.heartbeatToken(token), {
      timeoutAt: new Date("2030-01-01T00:00:00.000Z"),
      heartbeatDeadline: new Date("2029-01-01T00:00:30.000Z"),
    });
    // A date computed now differs from the one the first execution computed: the recorded extend is the truth.
    assert.deepEqual(await wait.extendToken({ id: token }, new Date()), { timeoutAt: new Date("2031-01-01T00:00:00.000Z") });
    await assert.rejects(wait.heartbeatToken(token), (error) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 409);
      assert.equal(error.message, "409: The token is REJECTED (SECRET_KEY): a heartbeat keeps only a waiting token alive");
      return true;
    });
  });
  assert.equal(run.unreplayed, false);

  const diverged = new RunExecution(start, replayOnly());
  await runScope.run(diverged, async () => {
    await assert.rejects(wait.completeToken(token, {}), (error) => {
      assert.ok(error instanceof NonDeterminismError);
      assert.ok(error.message.includes(`STEP "wait.rejectToken ${token}"`), error.message);
      assert.ok(error.message.includes(`COMPLETE_TOKEN "${token}"`), error.message);
      return true;
    });
  });
});
