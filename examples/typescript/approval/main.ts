// The approval flow of the waitpoint spec, end to end against a running server.
//
// A task asks a person to approve a document: it creates a token with a timeout, shows the
// token's URL (anyone may POST the answer there), waits, and continues on "approved" or
// "rejected", or handles the timeout. While it waits, the run holds no worker slot.
//
//   waitpoint serve                            # in one terminal; copy the dev key
//   WAITPOINT_SECRET_KEY=tr_dev_… npm start    # then approve from anywhere, as it prints
//
// `npm start -- --auto-approve` answers by itself after a second; `npm start -- --timeout 5s`
// shows the timeout path.

import { setTimeout as sleep } from "node:timers/promises";

import { AbortTaskRunError, Worker, runs, task, wait } from "waitpoint-sdk";

/** What the approver sends. */
type Approval = { status: "approved" | "rejected" };

/** The run's input. */
type Document = { title: string; timeout: string };

/** The task: ask, wait, act on the answer. */
export const approveDocument = task({
  id: "approve-document",
  run: async (document: Document) => {
    const token = await wait.createToken({ timeout: document.timeout });
    // A step, so the request is sent once even if the run replays after a crash.
    await wait.step("ask for approval", () => {
      console.error(`\nApproval needed for "${document.title}". Answer within ${document.timeout} with:`);
      console.error(`  curl -X POST '${token.url}' -H 'Content-Type: application/json' -d '{"status":"approved"}'\n`);
    });
    const result = await wait.forToken<Approval>(token);
    if (!result.ok) {
      console.error(`No answer: ${result.error.message}`);
      return { document: document.title, outcome: "escalated to a manager" };
    }
    switch (result.output.status) {
      case "approved":
        return { document: document.title, outcome: "published" };
      case "rejected":
        return { document: document.title, outcome: "sent back to the author" };
      default:
        throw new AbortTaskRunError(`unknown answer ${JSON.stringify(result.output)}`);
    }
  },
});

async function main(args: string[]): Promise<void> {
  const autoApprove = args.includes("--auto-approve");
  const timeoutAt = args.indexOf("--timeout");
  const timeout = timeoutAt >= 0 ? (args[timeoutAt + 1] ?? "10m") : "10m";
  if (!process.env.WAITPOINT_SECRET_KEY) {
    throw new Error("set WAITPOINT_SECRET_KEY to the key `waitpoint serve` printed");
  }

  const stop = new AbortController();
  const worker = new Worker({ tasks: [approveDocument] }).run(stop.signal);

  const { id } = await approveDocument.trigger({ title: "Q3 budget", timeout });
  console.error(`Triggered ${id}`);
  let run = await runs.retrieve(id);
  while (!run.isFinished) {
    const token = run.waitingOn[0]?.id;
    if (autoApprove && run.status === "WAITING" && token !== undefined) {
      await sleep(1_000);
      await wait.completeToken<Approval>(token, { status: "approved" });
    }
    await sleep(200);
    run = await runs.retrieve(id);
  }
  stop.abort();
  await worker;
  if (run.status !== "COMPLETED") throw new Error(`the run ended ${run.status}: ${JSON.stringify(run.error)}`);
  console.log(JSON.stringify(run.output));
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(`Error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
