// The standard waitpoint workload (shared/bench/workload.md) with the TypeScript worker, measured
// as `waitpoint bench runs` measures the Rust one: N runs each create a token, hand it to this
// driver and wait; then every token is completed by a POST to its URL, C in flight.
//
//   npm run bench -- --n 1000 [--concurrency 100] [--warmup 200] [--probe 200]
//                    [--server-pid PID] [--data-dir DIR] [--worker-concurrency 200]
//
// Reads WAITPOINT_API_URL and WAITPOINT_SECRET_KEY; prints a table, then one JSON line.

import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { tasks } from "../src/index.js";
import type { benchWait } from "./task.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    n: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "100" },
    warmup: { type: "string", default: "200" },
    probe: { type: "string", default: "200" },
    "server-pid": { type: "string" },
    "data-dir": { type: "string" },
    "worker-concurrency": { type: "string", default: "200" },
  },
});
const N = Number(values.n);
const C = Number(values.concurrency);
const WARMUP = Number(values.warmup);
const PROBE = Number(values.probe);
const SERVER_PID = values["server-pid"] === undefined ? undefined : Number(values["server-pid"]);
const DATA_DIR = values["data-dir"];
const API_URL = process.env.WAITPOINT_API_URL ?? "http://127.0.0.1:3030";
const KEY = process.env.WAITPOINT_SECRET_KEY ?? "";

const now = () => performance.timeOrigin + performance.now();

/** What the driver has heard from the runs (each once), and how many per round. */
const announced = new Map<string, string>();
const resumed = new Map<string, number>();
const announcedIn = new Map<string, number>();
const resumedIn = new Map<string, number>();
let heard: () => void = () => {};

function note<T>(heardOf: Map<string, T>, counts: Map<string, number>, id: string, value: T): void {
  if (heardOf.has(id)) return;
  heardOf.set(id, value);
  const round = id.slice(0, id.lastIndexOf(":"));
  counts.set(round, (counts.get(round) ?? 0) + 1);
}

async function until(what: () => boolean): Promise<void> {
  while (!what()) await new Promise<void>((resolve) => (heard = resolve));
}

function driverServer(): http.Server {
  return http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      const message = JSON.parse(body) as { i: string; url?: string; resumedAt?: number };
      if (request.url === "/id" && message.url !== undefined) note(announced, announcedIn, message.i, message.url);
      if (request.url === "/done" && message.resumedAt !== undefined) {
        note(resumed, resumedIn, message.i, message.resumedAt);
      }
      response.end("{}");
      heard();
    });
  });
}

/** Runs `work(i)` for i in 0..n with at most `limit` at once. */
async function pool(n: number, limit: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, n) }, async () => {
    while (next < n) await work(next++);
  });
  await Promise.all(lanes);
}

async function createPhase(round: string, n: number, driver: string): Promise<void> {
  await pool(n, C, async (i) => {
    await tasks.trigger<typeof benchWait>("bench-wait", { i: `${round}:${i}`, driver }, { tags: [round] });
  });
  await until(() => (announcedIn.get(round) ?? 0) >= n);
}

async function completePhase(round: string, n: number): Promise<Map<string, number>> {
  const sent = new Map<string, number>();
  await pool(n, C, async (i) => {
    const id = `${round}:${i}`;
    sent.set(id, now());
    const reply = await fetch(announced.get(id) ?? "", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ok: true, i }),
    });
    if (!reply.ok) throw new Error(`completing ${id}: ${reply.status}`);
    await reply.text();
  });
  return sent;
}

/** Counts the round's runs in `status` through the API, until there are `n`. */
async function waitForStatus(round: string, status: string, n: number): Promise<void> {
  for (;;) {
    let count = 0;
    let after: string | undefined;
    do {
      const query = new URLSearchParams({ "filter[status]": status, "filter[tags]": round, "page[size]": "100" });
      if (after !== undefined) query.set("page[after]", after);
      const reply = await fetch(`${API_URL}/api/v1/runs?${query.toString()}`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      const page = (await reply.json()) as { data: unknown[]; pagination: { next?: string } };
      count += page.data.length;
      after = page.data.length > 0 ? page.pagination.next : undefined;
    } while (after !== undefined);
    if (count >= n) return;
    await sleep(200);
  }
}

function memoryMiB(pid: number | undefined): { rss: number; peak: number } | undefined {
  if (pid === undefined) return undefined;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: round2(kib("VmRSS") / 1024), peak: round2(kib("VmHWM") / 1024) };
}

function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function diskMiB(): number | undefined {
  if (DATA_DIR === undefined) return undefined;
  return round2(Number(execFileSync("du", ["-sb", DATA_DIR]).toString().split("\t")[0]) / 1024 / 1024);
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function percentiles(latencies: number[]): Record<string, number> {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => round2(sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN);
  return { p50_ms: at(0.5), p95_ms: at(0.95), p99_ms: at(0.99), max_ms: at(1) };
}

async function main(): Promise<void> {
  const server = driverServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const driver = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const worker = spawn(process.execPath, [path.join(HERE, "../src/bin/waitpoint-worker.js"), path.join(HERE, "task.js")], {
    env: { ...process.env, WAITPOINT_WORKER_CONCURRENCY: values["worker-concurrency"] },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const pids = { server: SERVER_PID, worker: worker.pid };
  const cpu = () => ({ server: cpuSeconds(pids.server), worker: cpuSeconds(pids.worker), driver: process.cpuUsage() });
  const cpuDelta = (from: ReturnType<typeof cpu>, to: ReturnType<typeof cpu>) => ({
    server: round2(to.server - from.server),
    worker: round2(to.worker - from.worker),
    driver: round2((to.driver.user + to.driver.system - from.driver.user - from.driver.system) / 1e6),
  });
  process.stderr.write(`TypeScript worker: N=${N} C=${C} W=${WARMUP} K=${PROBE} against ${API_URL}\n`);
  const tag = (name: string) => `${name}-${process.pid}`;

  const warm = tag("warm");
  await createPhase(warm, WARMUP, driver);
  await completePhase(warm, WARMUP);
  await until(() => (resumedIn.get(warm) ?? 0) >= WARMUP);

  const main = tag("main");
  const cpuA = cpu();
  let started = now();
  await createPhase(main, N, driver);
  const createSecs = (now() - started) / 1000;
  await waitForStatus(main, "WAITING", N);
  const cpuAEnd = cpu();
  await sleep(1_000);
  const serverMemory = memoryMiB(pids.server);
  const workerMemory = memoryMiB(pids.worker);
  const diskWaiting = diskMiB();
  process.stderr.write(`  ${N} runs waiting after ${createSecs.toFixed(2)}s\n`);

  const cpuB = cpu();
  started = now();
  const sent = await completePhase(main, N);
  const acceptedSecs = (now() - started) / 1000;
  await until(() => (resumedIn.get(main) ?? 0) >= N);
  const firstSent = [...sent.values()].reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
  const lastResumed = [...sent.keys()].reduce((last, id) => Math.max(last, resumed.get(id) ?? 0), 0);
  const resumeSecs = (lastResumed - firstSent) / 1000;
  await waitForStatus(main, "COMPLETED", N);
  const cpuBEnd = cpu();
  const burst = [...sent].map(([id, at]) => (resumed.get(id) ?? Number.NaN) - at);
  process.stderr.write(`  ${N} runs resumed after ${resumeSecs.toFixed(2)}s\n`);

  const probe = tag("probe");
  await createPhase(probe, PROBE, driver);
  await waitForStatus(probe, "WAITING", PROBE);
  const unloaded: number[] = [];
  for (let i = 0; i < PROBE; i++) {
    const id = `${probe}:${i}`;
    const at = now();
    const reply = await fetch(announced.get(id) ?? "", { method: "POST", body: JSON.stringify({ ok: true, i }) });
    await reply.text();
    await until(() => resumed.has(id));
    unloaded.push((resumed.get(id) ?? Number.NaN) - at);
  }
  const summary = {
    benchmark: "runs",
    worker: "typescript",
    api_url: API_URL,
    n: N,
    concurrency: C,
    waits_per_s: round2(N / createSecs),
    completions_accepted_per_s: round2(N / acceptedSecs),
    resumes_per_s: round2(N / resumeSecs),
    resume_latency_burst: percentiles(burst),
    resume_latency_one_at_a_time: percentiles(unloaded),
    memory_mib_while_waiting: {
      server_rss: serverMemory?.rss,
      worker_rss: workerMemory?.rss,
      server_peak: memoryMiB(pids.server)?.peak,
      worker_peak: memoryMiB(pids.worker)?.peak,
    },
    disk_mib: { while_waiting: diskWaiting, at_end: diskMiB() },
    cpu_seconds: { create: cpuDelta(cpuA, cpuAEnd), complete: cpuDelta(cpuB, cpuBEnd) },
  };
  const exited = new Promise((resolve) => worker.once("exit", resolve));
  worker.kill("SIGTERM");
  await exited;
  server.close();
  for (const [name, value] of Object.entries(summary)) {
    process.stdout.write(`${name.padEnd(36)} ${JSON.stringify(value)}\n`);
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
