//! `waitpoint backup --to FILE`: a consistent copy of the SQLite database, taken while the
//! server runs. Restore it by putting it in a data directory as `waitpoint.db` (or pointing
//! `--database sqlite://FILE` at it) and starting `serve`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use waitpoint_storage::StorageError;

use crate::database::{DatabaseArgs, Location};

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The file to write the copy to; it must not exist
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

pub(crate) async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let source = match args.database.location()? {
        Location::Sqlite(path) => path,
        Location::Postgres(_) => bail!(
            "waitpoint backs up its SQLite database only: back up PostgreSQL with pg_dump, or continuously with \
             WAL archiving for point-in-time recovery (docs/deploy.md)"
        ),
    };
    if args.to.exists() {
        bail!("{} exists: give a new file (a backup never overwrites)", args.to.display());
    }
    waitpoint_sqlite::backup(&source, &args.to).await.map_err(|error| match error {
        StorageError::NotFound => anyhow::anyhow!("there is no database at {}", source.display()),
        other => anyhow::Error::new(other).context(format!("could not back up {}", source.display())),
    })?;
    let size = std::fs::metadata(&args.to).with_context(|| format!("could not read {}", args.to.display()))?.len();
    eprintln!("Backed up {} to {} ({size} bytes)", source.display(), args.to.display());
    Ok(())
}
