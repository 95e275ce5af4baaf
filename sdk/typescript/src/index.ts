/**
 * waitpoint's TypeScript SDK: Trigger.dev v4's task API (`task`, `wait`, `tasks`, `logger`)
 * running durably on a waitpoint server. Porting a task is changing one import:
 *
 * ```ts
 * import { task, wait } from "waitpoint-sdk"; // was "@trigger.dev/sdk"
 *
 * export const approve = task({
 *   id: "approve-document",
 *   run: async (doc: { title: string }) => {
 *     const token = await wait.createToken({ timeout: "1h" });
 *     await wait.step("notify the approver", () => notify(doc, token.url)); // never sent twice
 *     const approval = await wait.forToken<{ status: "approved" | "rejected" }>(token).unwrap();
 *     return { title: doc.title, status: approval.status };
 *   },
 * });
 * ```
 *
 * A waiting run holds no process: the worker (`waitpoint-worker tasks.js`, or `new Worker().run()`)
 * suspends it, and resumes it in memory or, after a restart or on another worker, by replaying
 * its journal. Code between waits runs again on replay, so side effects belong in `wait.step`.
 *
 * # Layout
 * - `task`: declaring and triggering tasks; `runs`: retrieving and canceling them.
 * - `wait`: tokens, waits (on one waitpoint, or a set), steps, and replay-safe time and randomness.
 * - `worker`: the worker, which executes runs (`parking`: what it holds; `protocol`: its calls;
 *   `channel`: its runs' operations, sent in batches).
 * - `journal`: one execution of a run walking its journal.
 * - `tokens`, `client`, `wire`: the HTTP API, its shapes and Trigger.dev's.
 * - `logger`: log lines that stay quiet during replay.
 */

export { configure, type ClientConfig } from "./client.js";
export {
  AbortTaskRunError,
  ApiError,
  KeyRefusedError,
  NonDeterminismError,
  ParallelOperationsError,
  RunMovedOnError,
  UnsupportedOptionError,
  WaitpointRejectedError,
  WaitpointTimeoutError,
  WorkerReplacedError,
} from "./errors.js";
export { logger, type LogProperties } from "./logger.js";
export {
  runs,
  task,
  tasks,
  type AnyTask,
  type Context,
  type RetrievedRun,
  type RetryOptions,
  type RunFnParams,
  type RunHandle,
  type Task,
  type TaskIdentifier,
  type TaskOptions,
  type TaskOutput,
  type TaskPayload,
  type TaskQueueOptions,
  type TriggerOptions,
} from "./task.js";
export {
  CursorPage,
  CursorPagePromise,
  type CallbackVerifier,
  type CallbackVerifierInfo,
  type CallbackVerifierScheme,
  type CreateWaitpointTokenRequestBody,
  type CreateWaitpointTokenResponse,
  type JsonSchema,
  type ListWaitpointTokensQueryParams,
  type TokenRef,
  type WaitpointListTokenItem,
  type WaitpointRetrievedToken,
  type WaitpointTokenDeadlines,
  type WaitpointTokenOutcome,
  type WaitpointTokenRejection,
  type WaitpointTokenStatus,
} from "./tokens.js";
export {
  ManualWaitpointPromise,
  WaitSetPromise,
  wait,
  type WaitForOptions,
  type WaitPeriod,
  type WaitSetItem,
  type WaitSetMember,
  type WaitSetResult,
  type WaitUntilOptions,
  type WaitpointTokenTypedResult,
} from "./wait.js";
export type { RunStatus } from "./wire.js";
export { Worker, type LogLevel, type WorkerOptions } from "./worker.js";
