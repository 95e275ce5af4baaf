//! A run's journal as its context walks it: the next position, the results recorded before
//! this execution (replayed in order), recording live results, and the refusals that stop an
//! execution (poison).

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use waitpoint_clock::Clock;
use waitpoint_types::api::worker::JournalEntryBody;
use waitpoint_types::{JournalKind, RawJson};

use crate::channel::Channel;
use crate::error::decode_json;
use crate::parking::{Parking, Permits};
use crate::{Client, Context, Error, Result};

/// Why a run's attempt must stop whatever its code does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Poison {
    /// This worker lost the run.
    MovedOn(String),
    /// The code diverged from the journal.
    NonDeterminism(String),
}

/// Where a run is in its journal.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// The lease every call about the run carries.
    pub(crate) epoch: u64,
    /// The position the next operation takes.
    pub(crate) next_seq: u32,
    /// The entries recorded before this execution started (replayed in order).
    pub(crate) journal: Vec<JournalEntryBody>,
}

impl Cursor {
    /// Whether the next operation's result is in the journal: the code runs again what it ran
    /// before.
    pub(crate) fn replaying(&self) -> bool {
        self.journal.get(self.next_seq as usize).is_some_and(|entry| entry.result.is_some())
    }
}

/// Everything one execution of a run shares between its context and the worker driving it.
#[derive(Debug)]
pub(crate) struct RunShared {
    pub(crate) client: Client,
    /// Where the run's protocol operations go.
    pub(crate) channel: Channel,
    /// Where `ctx.now()` reads the time.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) run_id: String,
    pub(crate) task_id: String,
    pub(crate) attempt: u32,
    pub(crate) cursor: tokio::sync::Mutex<Cursor>,
    pub(crate) poison: Mutex<Option<Poison>>,
    pub(crate) permits: Mutex<Option<Permits>>,
    pub(crate) parking: Parking,
}

impl RunShared {
    pub(crate) fn poisoned(&self) -> Option<Poison> {
        self.poison.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn poison(&self, poison: Poison) {
        self.poison.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(poison);
    }
}

/// What the journal says about the next operation.
pub(super) enum Begin<'a> {
    /// Recorded before: its result.
    Replayed(RawJson),
    /// Not recorded: perform it at `seq`, holding the cursor.
    Live { cursor: tokio::sync::MutexGuard<'a, Cursor>, seq: u32 },
}

/// Whether a recorded entry is another operation than one of `kind` named `name`. A datetime
/// wait matches by its kind alone: the deadline it recorded is the truth, so code that reads
/// the clock to compute it (and computes another one on replay) resumes where it stopped. The
/// server applies the same rule when the wait is asked again.
fn diverges(entry: &JournalEntryBody, kind: JournalKind, name: &str) -> bool {
    entry.kind != kind.as_str() || (kind != JournalKind::WaitDatetime && entry.name != name)
}

/// How an error names a recorded result.
fn recorded_result(kind: JournalKind, name: &str) -> String {
    match kind {
        JournalKind::Step => format!("the recorded result of step {name:?}"),
        _ => format!("the recorded result of {kind} {name:?}"),
    }
}

impl Context {
    /// Checks the next journal position against an operation of `kind` named `name`.
    pub(super) async fn begin(&self, kind: JournalKind, name: &str) -> Result<Begin<'_>> {
        if let Some(poison) = self.run.poisoned() {
            return Err(match poison {
                Poison::MovedOn(message) => Error::RunMovedOn(message),
                Poison::NonDeterminism(message) => Error::NonDeterminism(message),
            });
        }
        let mut cursor = self.run.cursor.try_lock().map_err(|_| Error::ParallelOperations)?;
        let seq = cursor.next_seq;
        if let Some(entry) = cursor.journal.get(seq as usize) {
            if diverges(entry, kind, name) {
                let message = format!(
                    "the run's code diverged from its journal at position {seq}: the journal recorded {} {:?}, \
                     the code now performs {kind} {name:?}",
                    entry.kind, entry.name
                );
                self.run.poison(Poison::NonDeterminism(message.clone()));
                return Err(Error::NonDeterminism(message));
            }
            if let Some(result) = entry.result.clone() {
                cursor.next_seq += 1;
                return Ok(Begin::Replayed(result));
            }
        }
        Ok(Begin::Live { cursor, seq })
    }

    /// An operation whose result is recorded through the journal: on replay, the recorded
    /// result; live, `perform`'s, recorded before it is returned (a retried record returns
    /// what was recorded first, which is then the result). An `Err` from `perform` is not
    /// recorded.
    pub(super) async fn recorded<T, E, F, Fut>(&self, kind: JournalKind, name: &str, perform: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (mut cursor, seq) = match self.begin(kind, name).await? {
            Begin::Replayed(result) => return Ok(decode_json(&result, || recorded_result(kind, name))?),
            Begin::Live { cursor, seq } => (cursor, seq),
        };
        let value = perform().await?;
        let result = RawJson::encode(&value)
            .map_err(|e| Error::Decode(format!("{} does not encode as JSON: {e}", recorded_result(kind, name))))?;
        let entry = JournalEntryBody { seq, kind: kind.as_str().into(), name: name.into(), result: Some(result) };
        let recorded = self.guard(self.run.channel.record(&self.run.run_id, cursor.epoch, entry).await)?;
        cursor.next_seq += 1;
        Ok(decode_json(&recorded.result.unwrap_or_else(RawJson::null), || recorded_result(kind, name))?)
    }

    /// Turns the server's refusals into poison: a lost run stops, a mismatch fails the run.
    pub(super) fn guard<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::Api { status: 409, message, code }) => {
                let poison = match code.as_deref() {
                    Some("journal_mismatch") => Poison::NonDeterminism(message),
                    _ => Poison::MovedOn(message),
                };
                self.run.poison(poison.clone());
                Err(match poison {
                    Poison::NonDeterminism(message) => Error::NonDeterminism(message),
                    Poison::MovedOn(message) => Error::RunMovedOn(message),
                })
            }
            other => other,
        }
    }
}
