// Starts a fresh `waitpoint serve` (SQLite, new data directory) and a worker, talks to the API
// over HTTP, and launches Debian's Chromium through playwright-core (never a downloaded browser).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "../..");

/** The dev environment's secret key, fixed so the tests know it. */
export const SECRET_KEY = "tr_dev_BrowserTestKey0123456789A";

/** Debian's Chromium, or `CHROMIUM` when set. */
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** `WAITPOINT_BIN`, else `$CARGO_TARGET_DIR/debug/waitpoint`, else `<repo>/target/debug/waitpoint`. */
export function binaryPath() {
  if (process.env.WAITPOINT_BIN) return path.resolve(process.env.WAITPOINT_BIN);
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(REPO, process.env.CARGO_TARGET_DIR) : path.join(REPO, "target");
  return path.join(target, "debug", "waitpoint");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

function spawnTracked(command, args, env) {
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("WAITPOINT_")));
}

/**
 * Starts `waitpoint serve` and reads its banner: returns `{ baseURL, link, banner, stop }`, where
 * `link` is the one-time sign-in link it printed.
 */
export async function startServer() {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`waitpoint binary not found at ${bin}: run \`cargo build -p waitpoint\``);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "waitpoint-browser-"));
  const port = await freePort();
  const env = { ...cleanEnv(), WAITPOINT_DEV_SECRET_KEY: SECRET_KEY, WAITPOINT_LOG: "warn" };
  const child = spawnTracked(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], env);
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const banner = await new Promise((resolve, reject) => {
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const lines = stdout.split("\n");
      if (lines.length > 5) resolve(lines.slice(0, 5));
    });
    child.once("exit", (code) => reject(new Error(`waitpoint exited (${code}) before its banner:\n${stdout}${stderr}`)));
  });
  const link = banner.find((line) => line.startsWith("Sign in to \"dev\"")).split(" ").pop();
  const baseURL = `http://127.0.0.1:${port}`;
  const stop = async () => {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(15_000)]);
    child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { baseURL, link, banner, stop, stderr: () => stderr };
}

/** `waitpoint bench worker` against `baseURL`: it runs the task `bench-wait`. */
export function startWorker(baseURL) {
  const child = spawnTracked(binaryPath(), ["bench", "worker", "--api-url", baseURL, "--secret-key", SECRET_KEY], {
    ...cleanEnv(),
    WAITPOINT_LOG: "warn",
  });
  return { stop: () => child.kill("SIGKILL") };
}

/**
 * The receiver `bench-wait` runs report to: each run POSTs `/id` with its token, then `/done`
 * once it continued. `announced(i)` and `done(i)` resolve when run `i` said so.
 */
export async function startDriver() {
  const waiters = new Map();
  const seen = new Map();
  const key = (kind, i) => `${kind}:${i}`;
  const arrive = (kind, body) => {
    const name = key(kind, body.i);
    seen.set(name, body);
    for (const resolve of waiters.get(name) ?? []) resolve(body);
    waiters.delete(name);
  };
  const server = http.createServer((request, response) => {
    let text = "";
    request.on("data", (chunk) => (text += chunk));
    request.on("end", () => {
      arrive(request.url.slice(1), JSON.parse(text));
      response.writeHead(200, { "content-type": "application/json" });
      response.end('{"ok":true}');
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const wait = (kind, i) =>
    seen.has(key(kind, i))
      ? Promise.resolve(seen.get(key(kind, i)))
      : new Promise((resolve) => waiters.set(key(kind, i), [...(waiters.get(key(kind, i)) ?? []), resolve]));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    announced: (i) => wait("id", i),
    done: (i) => wait("done", i),
    stop: () => server.close(),
  };
}

/** A call to the API with the dev key; returns the parsed JSON (throws on an error status). */
export async function api(baseURL, method, target, body) {
  const reply = await fetch(`${baseURL}${target}`, {
    method,
    headers: { authorization: `Bearer ${SECRET_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await reply.text();
  if (!reply.ok) throw new Error(`${method} ${target}: ${reply.status} ${text}`);
  return JSON.parse(text);
}

/** Debian's Chromium, headless, with a fresh profile of its own. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * Where screenshots go: `WAITPOINT_SCREENSHOTS` (`../../docs` refreshes the README's), else a
 * temporary directory, so a test run leaves the work tree as it was.
 */
export const SHOTS = process.env.WAITPOINT_SCREENSHOTS
  ? path.resolve(process.env.WAITPOINT_SCREENSHOTS)
  : mkdtempSync(path.join(os.tmpdir(), "waitpoint-screenshots-"));
