//! The run's logger: `tracing` events that carry the run, and stay quiet while the run
//! replays (the code before the first live operation already logged when it first ran).

use std::fmt;

use crate::Context;

impl Context {
    /// Whether the code is running again what an earlier execution ran: the run resumed by
    /// replay, and the next operation's result is in its journal. False once the code has
    /// caught up with the journal, and inside a step's function that runs live.
    pub fn is_replaying(&self) -> bool {
        // The cursor is held only while an operation is performed live.
        self.run.cursor.try_lock().is_ok_and(|cursor| cursor.replaying())
    }

    /// Logs `message` at debug level with the run's id, task and attempt (target
    /// `waitpoint_sdk::run`), unless the run is replaying.
    pub fn debug(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::debug!(target: "waitpoint_sdk::run", run = %self.run.run_id, task = %self.run.task_id, attempt = self.run.attempt, "{message}");
        }
    }

    /// Logs `message` at info level, as [`debug`](Self::debug) does.
    pub fn info(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::info!(target: "waitpoint_sdk::run", run = %self.run.run_id, task = %self.run.task_id, attempt = self.run.attempt, "{message}");
        }
    }

    /// Logs `message` at warn level, as [`debug`](Self::debug) does.
    pub fn warn(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::warn!(target: "waitpoint_sdk::run", run = %self.run.run_id, task = %self.run.task_id, attempt = self.run.attempt, "{message}");
        }
    }

    /// Logs `message` at error level, as [`debug`](Self::debug) does.
    pub fn error(&self, message: impl fmt::Display) {
        if !self.is_replaying() {
            tracing::error!(target: "waitpoint_sdk::run", run = %self.run.run_id, task = %self.run.task_id, attempt = self.run.attempt, "{message}");
        }
    }
}
