/**
 * Test helpers: a real `waitpoint serve` per suite (fresh SQLite data directory, free port), the
 * SDK pointed at it, workers in process or as child processes, and waiting for runs to finish.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { type RetrievedRun, Worker, type WorkerOptions, configure, runs } from "../src/index.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The package's folder (tests run from `build/test`). */
export const PACKAGE = path.resolve(HERE, "../..");
const REPO = path.resolve(PACKAGE, "../..");

/** The dev environment's secret key, fixed so the tests know it: tr_dev_ + 24 alphanumerics. */
export const SECRET_KEY = "tr_dev_TypeScriptSdkTest0123456";

/** `WAITPOINT_BIN`, else `$CARGO_TARGET_DIR/debug/waitpoint`, else `<repo>/target/debug/waitpoint`. */
export function binaryPath(): string {
  if (process.env.WAITPOINT_BIN) return path.resolve(process.env.WAITPOINT_BIN);
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(REPO, process.env.CARGO_TARGET_DIR) : path.join(REPO, "target");
  return path.join(target, "debug", "waitpoint");
}

/** A port nothing listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** A running server. */
export interface Server {
  baseURL: string;
  /** Everything it printed, over every start. */
  output(): string;
  /** SIGKILL, then a new process on the same port and data directory, once it answers. */
  crashAndRestart(): Promise<void>;
  /** SIGTERM, then the data directory is removed. */
  stop(): Promise<void>;
}

/** One `waitpoint serve` process. */
interface Process {
  child: ChildProcess;
  exited: Promise<void>;
  gone(): boolean;
}

function spawnServer(bin: string, args: string[], log: (chunk: Buffer) => void): Process {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("WAITPOINT_")));
  env.WAITPOINT_DEV_SECRET_KEY = SECRET_KEY;
  env.WAITPOINT_LOG = process.env.WAITPOINT_LOG ?? "warn";
  const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.stdout.on("data", log);
  child.stderr.on("data", log);
  const state = { gone: false };
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => {
    state.gone = true;
    children.delete(child);
  });
  return { child, exited, gone: () => state.gone };
}

/** Waits until the server at `baseURL` answers `/healthz` (at most 30 s). */
async function ready(baseURL: string, server: Process, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.gone()) throw new Error(`waitpoint exited before it was ready:\n${output()}`);
    try {
      const reply = await fetch(`${baseURL}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (reply.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`waitpoint did not answer /healthz within 30 s:\n${output()}`);
    await sleep(50);
  }
}

/**
 * Starts `waitpoint serve` (with `args`) on a free port and a fresh data directory, waits for
 * `/healthz`, and points the SDK (`configure`) at it.
 */
export async function startServer(args: string[] = []): Promise<Server> {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(`waitpoint binary not found at ${bin}: run \`cargo build -p waitpoint\`, or set WAITPOINT_BIN`);
  }
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "waitpoint-ts-"));
  const port = await freePort();
  const serveArgs = ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, ...args];
  let output = "";
  const log = (chunk: Buffer) => (output += chunk.toString());
  const baseURL = `http://127.0.0.1:${port}`;
  let server = spawnServer(bin, serveArgs, log);
  await ready(baseURL, server, () => output);
  configure({ baseURL, secretKey: SECRET_KEY });
  return {
    baseURL,
    output: () => output,
    async crashAndRestart() {
      server.child.kill("SIGKILL");
      await server.exited;
      server = spawnServer(bin, serveArgs, log);
      await ready(baseURL, server, () => output);
    },
    async stop() {
      server.child.kill("SIGTERM");
      await Promise.race([server.exited, sleep(15_000, undefined, { ref: false })]);
      if (!server.gone()) server.child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls the run until `done` says so (every 50 ms, at most `timeoutMs`). */
export async function waitForRun<T = unknown>(
  id: string,
  done: (run: RetrievedRun<T>) => boolean = (run) => run.isFinished,
  timeoutMs = 30_000,
): Promise<RetrievedRun<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await runs.retrieve<T>(id);
    if (done(run)) return run;
    if (Date.now() > deadline) throw new Error(`run ${id} did not get there in time: ${JSON.stringify(run)}`);
    await sleep(50);
  }
}

/** A worker log that keeps lines for the test to read instead of printing them. */
export function quietLog(): { lines: string[]; log: (level: string, message: string) => void } {
  const lines: string[] = [];
  return { lines, log: (level, message) => lines.push(`${level} ${message}`) };
}

/** Runs `body` while a worker with `options` (quiet, every task given) runs; stops it after. */
export async function withWorker<T>(options: WorkerOptions, body: (worker: Worker) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const worker = new Worker({ log: quietLog().log, shutdownGraceMs: 5_000, ...options });
  const running = worker.run(stop.signal);
  try {
    return await body(worker);
  } finally {
    stop.abort();
    await running;
  }
}

/** The token a waiting run waits on. */
export async function waitingToken(runId: string): Promise<string> {
  const [token] = await waitingOn(runId);
  if (token === undefined) throw new Error(`run ${runId} waits on nothing`);
  return token;
}

/** The waitpoints a run waits on once it waits, in the wait's order (a set's, as given). */
export async function waitingOn(runId: string): Promise<string[]> {
  const run = await waitForRun(runId, (candidate) => candidate.status === "WAITING");
  return run.waitingOn.map((waitpoint) => waitpoint.id);
}
