//! Copies of a live database, through SQLite's online backup API.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use waitpoint_storage::{Result, StorageError};

use crate::map_error;

/// How long to wait before trying again when the source is locked for a moment.
const BUSY_PAUSE: Duration = Duration::from_millis(10);

/// Copies the database at `source` into a new file `destination` (which must not exist). The
/// copy is the database as it was at one moment: every transaction committed before it and
/// none after. The server may keep writing meanwhile (in WAL mode a reader blocks no writer).
/// The copy is readable by its owner only: it holds secret keys and signing secrets.
pub async fn backup(source: &Path, destination: &Path) -> Result<()> {
    let (source, destination) = (source.to_path_buf(), destination.to_path_buf());
    tokio::task::spawn_blocking(move || backup_blocking(&source, &destination)).await.map_err(StorageError::database)?
}

fn backup_blocking(source: &Path, destination: &Path) -> Result<()> {
    if !source.is_file() {
        return Err(StorageError::NotFound);
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        file.mode(0o600);
    }
    file.open(destination).map_err(StorageError::database)?;
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(map_error)?;
    let mut to = Connection::open(destination).map_err(map_error)?;
    let copy = Backup::new(&from, &mut to).map_err(map_error)?;
    // All pages in one step: the copy reads one snapshot of the source.
    loop {
        match copy.step(-1).map_err(map_error)? {
            StepResult::Done => return Ok(()),
            // A step of all pages ends Done; Busy and Locked pass when the writer lets go.
            _ => std::thread::sleep(BUSY_PAUSE),
        }
    }
}
