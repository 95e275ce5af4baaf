/**
 * The worker protocol's calls (docs/runs.md, "The worker protocol"). Polls are their own route
 * and are not retried (the worker polls again); every operation of a run goes through the worker
 * channel, carries the epoch the worker claimed the run with, and is sent again while no server
 * answers: journal positions and epochs make each safe to repeat. The token calls a run makes
 * are the token API's, as outside a run.
 */

import { WorkerChannel } from "./channel.js";
import { type ApiClient, segment } from "./client.js";
import type { RunProtocol } from "./journal.js";
import { tokenApi } from "./tokens.js";
import type { ClaimedRun, JournalEntry, PollRequest, RunErrorBody, RunTokenResponse, WaitResponse } from "./wire.js";

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

/** The worker protocol over `client`: polls by route, run operations through one channel. */
export function workerProtocol(client: ApiClient): WorkerProtocol {
  const channel = new WorkerChannel(client);
  return {
    poll(workerId, request, signal) {
      const options = { body: request, timeoutMs: request.waitMs + POLL_SLACK_MS };
      return client.call("POST", `api/v1/workers/${segment(workerId)}/poll`, signal ? { ...options, signal } : options);
    },
    async journal(run) {
      const answer = await channel.call<{ entries: JournalEntry[] }>({ op: "journal", run });
      return answer.entries;
    },
    async record(run, epoch, entry) {
      const answer = await channel.call<{ entry: JournalEntry }>({ op: "record", run, epoch, entry });
      return answer.entry;
    },
    createToken(run, epoch, seq, options) {
      return channel.call<RunTokenResponse>({ op: "createToken", run, epoch, seq, options });
    },
    wait(run, epoch, seq, waitFor) {
      return channel.call<WaitResponse>({ op: "wait", run, epoch, seq, for: waitFor });
    },
    async completeAttempt(run, epoch, output) {
      await channel.call({ op: "complete", run, epoch, output });
    },
    async failAttempt(run, epoch, error, retryAfterMs) {
      const operation = retryAfterMs === undefined ? { epoch, error } : { epoch, error, retryAfterMs };
      await channel.call({ op: "fail", run, ...operation });
    },
    completeToken: (id, data) => tokenApi.complete(client, id, data),
    rejectToken: (id, body) => tokenApi.reject(client, id, body),
    heartbeatToken: (id) => tokenApi.heartbeat(client, id),
    extendToken: (id, body) => tokenApi.extend(client, id, body),
    retrieveToken: (id) => tokenApi.retrieve(client, id),
    listTokens: (params, cursor) => tokenApi.page(client, params, cursor),
  };
}
