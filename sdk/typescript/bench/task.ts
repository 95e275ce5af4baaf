// The standard workload's task (BENCHMARKS.md), for the TypeScript worker that
// `waitpoint bench runs --worker-command` drives: create a token, hand it to the driver once,
// wait on it, report when it resumed.

import { task, wait } from "../src/index.js";

type Payload = { i: string; driver: string };

const JSON_BODY = { "content-type": "application/json" };

export const benchWait = task({
  id: "bench-wait",
  run: async (payload: Payload) => {
    const token = await wait.createToken({ timeout: "1h" });
    await wait.step("hand the token to the driver", async () => {
      const body = JSON.stringify({ i: payload.i, tokenId: token.id, url: token.url });
      const reply = await fetch(`${payload.driver}/id`, { method: "POST", headers: JSON_BODY, body });
      if (!reply.ok) throw new Error(`the driver answered ${reply.status}`);
    });
    await wait.forToken(token).unwrap();
    const resumedAt = performance.timeOrigin + performance.now();
    const body = JSON.stringify({ i: payload.i, resumedAt });
    await fetch(`${payload.driver}/done`, { method: "POST", headers: JSON_BODY, body });
    return { i: payload.i, resumedAt, payload };
  },
});
