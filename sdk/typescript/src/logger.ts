/**
 * `logger`: log lines of a run's code that stay quiet while the run replays (the code before the
 * first live operation already logged when it first ran), as Trigger.dev's `logger` in shape.
 * Lines go to stderr, prefixed with the run, its task and attempt. `console.log` is not quieted:
 * it prints again on every replay.
 */

import { format } from "node:util";

import { runScope } from "./journal.js";

/** Extra fields of a log line. */
export type LogProperties = Record<string, unknown>;

function write(level: string, message: string, properties?: LogProperties): void {
  const run = runScope.getStore();
  if (run?.isReplaying()) return;
  const where = run ? ` [${run.runId} ${run.taskId} attempt ${run.attempt}]` : "";
  const extra = properties === undefined ? "" : ` ${format("%j", properties)}`;
  process.stderr.write(`${new Date().toISOString()} ${level}${where} ${message}${extra}\n`);
}

/** Logs of a run's code that stay quiet during replay. */
export const logger = {
  /** A debug line. */
  debug(message: string, properties?: LogProperties): void {
    write("DEBUG", message, properties);
  },
  /** A plain line. */
  log(message: string, properties?: LogProperties): void {
    write("LOG", message, properties);
  },
  /** An info line. */
  info(message: string, properties?: LogProperties): void {
    write("INFO", message, properties);
  },
  /** A warning. */
  warn(message: string, properties?: LogProperties): void {
    write("WARN", message, properties);
  },
  /** An error. */
  error(message: string, properties?: LogProperties): void {
    write("ERROR", message, properties);
  },
};
