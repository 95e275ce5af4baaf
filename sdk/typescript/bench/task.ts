// The standard workload's task (shared/bench/workload.md), for the TypeScript worker: create a
// token, hand it to the driver once, wait on it, report when it resumed.

import { task, wait } from "../src/index.js";

type Payload = { i: string; driver: string };

export const benchWait = task({
  id: "bench-wait",
  run: async (payload: Payload) => {
    const token = await wait.createToken({ timeout: "1h" });
    await wait.step("hand the token to the driver", async () => {
      const body = JSON.stringify({ i: payload.i, tokenId: token.id, url: token.url });
      const reply = await fetch(`${payload.driver}/id`, { method: "POST", body });
      if (!reply.ok) throw new Error(`the driver answered ${reply.status}`);
    });
    await wait.forToken(token).unwrap();
    const resumedAt = performance.timeOrigin + performance.now();
    await fetch(`${payload.driver}/done`, { method: "POST", body: JSON.stringify({ i: payload.i, resumedAt }) });
    return { i: payload.i, resumedAt, payload };
  },
});
