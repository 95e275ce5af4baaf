#!/usr/bin/env node
/**
 * `waitpoint-worker <module>...`: imports the modules (which declare tasks with `task()`), then
 * runs a worker with every declared task until SIGINT or SIGTERM. The server and key come from
 * `WAITPOINT_API_URL` and `WAITPOINT_SECRET_KEY` (or Trigger.dev's `TRIGGER_API_URL` and
 * `TRIGGER_SECRET_KEY`), the instance name from `WAITPOINT_WORKER_INSTANCE`, the slots from
 * `WAITPOINT_WORKER_CONCURRENCY`.
 */

import path from "node:path";
import { pathToFileURL } from "node:url";

import { Worker } from "../index.js";

const USAGE = "usage: waitpoint-worker <module with tasks>... (for example: waitpoint-worker dist/tasks.js)";

async function main(modules: string[]): Promise<number> {
  if (modules.length === 0 || modules.some((module) => module.startsWith("-"))) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  for (const module of modules) await import(pathToFileURL(path.resolve(module)).href);
  const concurrency = process.env.WAITPOINT_WORKER_CONCURRENCY;
  const worker = new Worker(concurrency === undefined ? {} : { concurrency: Number(concurrency) });
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  process.once("SIGTERM", () => stop.abort());
  await worker.run(stop.signal);
  return 0;
}

// Exits once the worker stopped: runs still executing then (past the grace period) were handed
// back to the server, and must not hold the process up.
main(process.argv.slice(2)).then(
  (code) => {
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`waitpoint-worker: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
