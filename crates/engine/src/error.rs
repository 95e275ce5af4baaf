//! The engine's error type. Each variant says whose fault it is, so the HTTP edge can map it
//! to a stable status code; messages are written for the caller and tell them what to fix.

use waitpoint_storage::StorageError;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is malformed or asks for something impossible. (HTTP 400)
    #[error("{0}")]
    Invalid(String),
    /// Well-formed but over a limit, such as more than 10 tags. (HTTP 422)
    #[error("{0}")]
    Unprocessable(String),
    /// No credentials, or credentials that identify no one. (HTTP 401)
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials that do not grant this action. (HTTP 403)
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist (for this caller). (HTTP 404)
    #[error("{0}")]
    NotFound(String),
    /// Something with this name already exists. (HTTP 409)
    #[error("{0}")]
    Conflict(String),
    /// A worker's call about a run it no longer holds (canceled, or taken by another worker
    /// after it was presumed gone): the worker must drop the run. (HTTP 409, code `run_moved_on`)
    #[error("{0}")]
    RunMovedOn(String),
    /// A worker's call does not match the run's journal: its code diverged from what the run
    /// recorded. (HTTP 409, code `journal_mismatch`)
    #[error("{0}")]
    JournalMismatch(String),
    /// A worker's poll from a process that another one, restarted under the same worker id,
    /// took over: the older process must stop. (HTTP 409, code `worker_replaced`)
    #[error("{0}")]
    WorkerReplaced(String),
    /// Storage failed; nothing was acknowledged. Details are logged, not shown. (HTTP 500)
    #[error("storage failed: {0}")]
    Storage(#[source] StorageError),
    /// Something the engine relies on did not hold: a bug, not the caller's fault. Details are
    /// logged, not shown. (HTTP 500)
    #[error("internal error: {0}")]
    Internal(String),
    /// The engine is shutting down and takes no more writes. (HTTP 503)
    #[error("waitpoint is shutting down")]
    ShuttingDown,
}

/// A storage error keeps its kind: a conflict is the engine's conflict (409), a record not
/// found is not found (404); only a failing or unreadable database is a storage failure.
impl From<StorageError> for EngineError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::NotFound("not found".into()),
            StorageError::Conflict(message) => Self::Conflict(message),
            error @ (StorageError::Database(_) | StorageError::Corrupt(_)) => Self::Storage(error),
        }
    }
}

/// Result of an engine call.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_keep_their_kind() {
        assert!(matches!(EngineError::from(StorageError::NotFound), EngineError::NotFound(_)));
        let conflict = EngineError::from(StorageError::Conflict("key taken".into()));
        assert!(matches!(&conflict, EngineError::Conflict(message) if message == "key taken"));
        let corrupt = EngineError::from(StorageError::Corrupt("bad row".into()));
        assert!(matches!(&corrupt, EngineError::Storage(StorageError::Corrupt(_))));
        assert!(std::error::Error::source(&corrupt).is_some(), "the storage error stays the source");
    }
}
