// The webhook flow of the waitpoint spec (the Replicate example), end to end.
//
// A task starts a slow "prediction" on an external service and hands it the token's `url` as
// the webhook. The service answers at once ("starting"), works, and later POSTs its result to
// that URL, with no credentials. The run, suspended meanwhile, continues with the prediction.
// The external service here is a small local stand-in started by the example.
//
//   waitpoint serve                            # in one terminal; copy the dev key
//   WAITPOINT_SECRET_KEY=tr_dev_… npm start

import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

import { Worker, runs, task, wait } from "waitpoint-sdk";

/** What the stand-in service is asked for. */
type PredictionRequest = { input: { prompt: string }; webhook: string };

/** What it calls back with. */
type Prediction = { id: string; status: string; output: string };

/** The stand-in for the prediction service: accepts a job, and two seconds later POSTs the result to the job's webhook. */
function predictionService(): http.Server {
  return http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      const job = JSON.parse(body) as PredictionRequest;
      const id = `p-${process.pid}`;
      const result: Prediction = { id, status: "succeeded", output: `a painting of ${job.input.prompt}` };
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ id, status: "starting" }));
      setTimeout(() => {
        const headers = { "content-type": "application/json" };
        fetch(job.webhook, { method: "POST", headers, body: JSON.stringify(result) }).catch((error: unknown) => {
          console.error(`the stand-in service could not call back: ${String(error)}`);
        });
      }, 2_000);
    });
  });
}

/** The task: start the prediction with the token's URL as webhook, wait, use the result. */
export const generateImage = task({
  id: "generate-image",
  run: async (input: { prompt: string; service: string }) => {
    const token = await wait.createToken({ timeout: "10m" });
    const started = await wait.step("start the prediction", async () => {
      const request: PredictionRequest = { input: { prompt: input.prompt }, webhook: token.url };
      const reply = await fetch(`${input.service}/predictions`, { method: "POST", body: JSON.stringify(request) });
      return (await reply.json()) as { id: string; status: string };
    });
    console.error(`The service is "${started.status}"; the run waits for its callback.`);
    const prediction = await wait.forToken<Prediction>(token).unwrap();
    return { prediction: prediction.id, image: prediction.output };
  },
});

async function main(): Promise<void> {
  if (!process.env.WAITPOINT_SECRET_KEY) {
    throw new Error("set WAITPOINT_SECRET_KEY to the key `waitpoint serve` printed");
  }
  const service = predictionService();
  await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve));
  const serviceUrl = `http://127.0.0.1:${(service.address() as AddressInfo).port}`;

  const stop = new AbortController();
  const worker = new Worker({ tasks: [generateImage] }).run(stop.signal);

  const { id } = await generateImage.trigger({ prompt: "a cat by Andy Warhol", service: serviceUrl });
  console.error(`Triggered ${id}`);
  let run = await runs.retrieve(id);
  while (!run.isFinished) {
    await sleep(200);
    run = await runs.retrieve(id);
  }
  stop.abort();
  await worker;
  service.close();
  if (run.status !== "COMPLETED") throw new Error(`the run ended ${run.status}: ${JSON.stringify(run.error)}`);
  console.log(JSON.stringify(run.output));
}

main().catch((error: unknown) => {
  console.error(`Error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
