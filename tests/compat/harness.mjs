// Starts and stops a real `waitpoint serve` process and talks to it over plain HTTP, for the
// parts of the contract the SDK does not reach (curl form, callback URL, malformed bodies).

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");

/** The dev environment's secret key, fixed so the test knows it: tr_dev_ + 24 alphanumerics. */
export const SECRET_KEY = "tr_dev_CompatTestKey0123456789AB";

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

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts `waitpoint serve` on a free port with a fresh data directory and waits until
 * `/healthz` answers 200. Returns `{ baseURL, stop, output }`; `stop()` sends SIGTERM and
 * resolves to `{ code, signal }` of the exit.
 */
export async function startServer(extraArgs = []) {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(`waitpoint binary not found at ${bin}: run \`cargo build -p waitpoint\` at the repo root, or set WAITPOINT_BIN`);
  }
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "waitpoint-compat-"));
  const port = await freePort();
  // No inherited WAITPOINT_* setting (a WAITPOINT_DATABASE would point the server elsewhere).
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("WAITPOINT_")));
  env.WAITPOINT_DEV_SECRET_KEY = SECRET_KEY;
  env.WAITPOINT_LOG = process.env.WAITPOINT_LOG ?? "warn";
  const args = ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, ...extraArgs];
  const child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  let exit;
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      exit = { code, signal };
      resolve(exit);
    });
    child.once("error", (error) => {
      running.delete(child);
      exit = { code: null, signal: null, error };
      resolve(exit);
    });
  });

  const baseURL = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exit) throw new Error(`waitpoint exited before it was ready (${JSON.stringify(exit)}):\n${output}`);
    try {
      const reply = await fetch(`${baseURL}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (reply.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`waitpoint did not answer /healthz within 30 s:\n${output}`);
    }
    await sleep(50);
  }

  let stopped;
  const stop = () => {
    stopped ??= (async () => {
      if (!exit) child.kill("SIGTERM");
      const result = await Promise.race([exited, sleep(15_000, undefined, { ref: false })]);
      if (!result) {
        child.kill("SIGKILL");
        throw new Error(`waitpoint did not exit within 15 s of SIGTERM:\n${output}`);
      }
      rmSync(dataDir, { recursive: true, force: true });
      return result;
    })();
    return stopped;
  };
  return { baseURL, stop, output: () => output };
}

function parseJson(text) {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A plain fetch. `auth` is the bearer credential (the secret key unless given; `null` for none);
 * a non-string `body` is sent as JSON. Returns `{ status, headers, text, json }`.
 */
export async function rawRequest(baseURL, method, target, { auth = SECRET_KEY, body, headers = {} } = {}) {
  const sent = { ...headers };
  if (auth) sent.authorization = `Bearer ${auth}`;
  if (body !== undefined && typeof body !== "string") body = JSON.stringify(body);
  if (body !== undefined && !("content-type" in sent)) sent["content-type"] = "application/json";
  const url = target.startsWith("http") ? target : `${baseURL}${target}`;
  const reply = await fetch(url, { method, headers: sent, body });
  const text = await reply.text();
  return { status: reply.status, headers: reply.headers, text, json: parseJson(text) };
}

/** A POST sent with `Transfer-Encoding: chunked`, hence without a Content-Length header. */
export function postChunked(url, chunks) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: "POST", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } },
      (reply) => {
        let text = "";
        reply.setEncoding("utf8");
        reply.on("data", (chunk) => (text += chunk));
        reply.on("end", () =>
          resolve({ status: reply.statusCode, headers: reply.headers, text, json: parseJson(text) }),
        );
      },
    );
    request.on("error", reject);
    for (const chunk of chunks) request.write(chunk);
    request.end();
  });
}

/** The payload of a JWT (no signature check). */
export function decodeJwt(jwt) {
  const parts = jwt.split(".");
  if (parts.length !== 3) throw new Error(`not a JWT: ${jwt}`);
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
}

/** Signs `payload` the way Trigger.dev's `generateJWT` does: JOSE header `{"alg":"HS256"}` only. */
export function signJwt(payload, key) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${encode({ alg: "HS256" })}.${encode(payload)}`;
  return `${unsigned}.${createHmac("sha256", key).update(unsigned).digest("base64url")}`;
}
