/**
 * The worker protocol's calls (docs/runs.md, "The worker protocol"). Every call about a run
 * carries the epoch the worker claimed it with and is retried while no server answers: journal
 * positions and epochs make each safe to repeat. Polls are not retried (the worker polls again),
 * and neither are the token calls a run makes (as outside a run).
 */

import { type ApiClient, segment } from "./client.js";
import type { RunProtocol } from "./journal.js";
import { tokenApi } from "./tokens.js";
import type { ClaimedRun, JournalEntry, PollRequest, RunErrorBody, WaitResponse } from "./wire.js";

/** How much longer than its `waitMs` a poll may take to answer. */
const POLL_SLACK_MS = 30_000;

/** The calls a worker makes. */
export interface WorkerProtocol extends RunProtocol {
  /** Takes runs (and says the worker is alive). */
  poll(workerId: string, request: PollRequest, signal?: AbortSignal): Promise<{ runs: ClaimedRun[] }>;
  /** The journal of a run, to replay. */
  journal(runId: string): Promise<JournalEntry[]>;
  /** The attempt returned `output`: the run completes. */
  completeAttempt(runId: string, epoch: number, output: unknown): Promise<void>;
  /** The attempt failed: retried after `retryAfterMs` if given and attempts remain, else the run fails. */
  failAttempt(runId: string, epoch: number, error: RunErrorBody, retryAfterMs: number | undefined): Promise<void>;
}

/** The worker protocol over `client`. */
export function workerProtocol(client: ApiClient): WorkerProtocol {
  const run = (id: string, what: string) => `api/v1/runs/${segment(id)}/${what}`;
  return {
    poll(workerId, request, signal) {
      const options = { body: request, timeoutMs: request.waitMs + POLL_SLACK_MS };
      return client.call("POST", `api/v1/workers/${segment(workerId)}/poll`, signal ? { ...options, signal } : options);
    },
    async journal(runId) {
      const answer = await client.call<{ entries: JournalEntry[] }>("GET", run(runId, "journal"), { retry: true });
      return answer.entries;
    },
    async record(runId, epoch, entry) {
      const body = { epoch, entry };
      const answer = await client.call<{ entry: JournalEntry }>("POST", run(runId, "journal"), { body, retry: true });
      return answer.entry;
    },
    createToken(runId, epoch, seq, options) {
      return client.call("POST", run(runId, "tokens"), { body: { epoch, seq, options }, retry: true });
    },
    wait(runId, epoch, seq, waitFor) {
      return client.call<WaitResponse>("POST", run(runId, "wait"), { body: { epoch, seq, for: waitFor }, retry: true });
    },
    async completeAttempt(runId, epoch, output) {
      await client.call("POST", run(runId, "attempt/complete"), { body: { epoch, output }, retry: true });
    },
    async failAttempt(runId, epoch, error, retryAfterMs) {
      const body = retryAfterMs === undefined ? { epoch, error } : { epoch, error, retryAfterMs };
      await client.call("POST", run(runId, "attempt/fail"), { body, retry: true });
    },
    completeToken: (id, data) => tokenApi.complete(client, id, data),
    rejectToken: (id, body) => tokenApi.reject(client, id, body),
    heartbeatToken: (id) => tokenApi.heartbeat(client, id),
    extendToken: (id, body) => tokenApi.extend(client, id, body),
    retrieveToken: (id) => tokenApi.retrieve(client, id),
    listTokens: (params, cursor) => tokenApi.page(client, params, cursor),
  };
}
