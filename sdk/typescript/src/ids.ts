/**
 * Time-ordered ids, made as the server makes them: `c`, nine base-36 digits of the time in
 * milliseconds, four of a per-millisecond sequence and eleven random ones. Ids from one process
 * sort in the order they were made, which is what a worker's session needs: a restarted process
 * makes a session that sorts after the one before.
 */

import { randomInt } from "node:crypto";

const TIME_DIGITS = 9;
const SEQUENCE_DIGITS = 4;
const RANDOM_DIGITS = 11;
const MAX_SEQUENCE = 36 ** SEQUENCE_DIGITS;

let last = { ms: 0, sequence: 0 };

function base36(value: number, digits: number): string {
  return value.toString(36).padStart(digits, "0").slice(-digits);
}

/** The next id at `nowMs`; strictly increasing within the process, even if the clock steps back. */
export function timeOrderedId(nowMs: number): string {
  if (nowMs > last.ms) {
    last = { ms: nowMs, sequence: 0 };
  } else if (last.sequence + 1 < MAX_SEQUENCE) {
    last = { ms: last.ms, sequence: last.sequence + 1 };
  } else {
    last = { ms: last.ms + 1, sequence: 0 };
  }
  let random = "";
  while (random.length < RANDOM_DIGITS) random += base36(randomInt(36), 1);
  return `c${base36(last.ms, TIME_DIGITS)}${base36(last.sequence, SEQUENCE_DIGITS)}${random}`;
}
