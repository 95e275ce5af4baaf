//! `waitpoint vacuum`: rewrites an SQLite database made before waitpoint gave the space that
//! retention frees back to the file system, once; from then on the file shrinks as records go.

use std::path::Path;

use anyhow::bail;
use clap::Args;
use waitpoint_storage::StorageError;

use crate::database::{DatabaseArgs, Location};

#[derive(Debug, Args)]
pub(crate) struct VacuumArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

pub(crate) async fn run(args: VacuumArgs) -> anyhow::Result<()> {
    let path = match args.database.location()? {
        Location::Sqlite(path) => path,
        Location::Postgres(_) => bail!(
            "waitpoint vacuums its SQLite database only: on PostgreSQL, autovacuum makes the space of deleted rows \
             reusable (docs/deploy.md)"
        ),
    };
    let before = size(&path);
    waitpoint_sqlite::vacuum(&path).await.map_err(|error| match error {
        StorageError::NotFound => anyhow::anyhow!("there is no database at {}", path.display()),
        other => {
            anyhow::Error::new(other).context(format!("could not vacuum {} (is the server stopped?)", path.display()))
        }
    })?;
    eprintln!(
        "Vacuumed {}: {before} bytes before, {} after; from now on it shrinks as retention deletes",
        path.display(),
        size(&path)
    );
    Ok(())
}

/// The database's size on disk: its file and its write-ahead log.
fn size(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path.as_os_str(), wal.as_os_str()].iter().filter_map(|file| std::fs::metadata(file).ok()).map(|m| m.len()).sum()
}
