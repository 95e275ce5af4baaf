//! Opening the store: `--database sqlite://PATH` or `postgres://…`, else SQLite in `--data-dir`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use waitpoint_postgres::PostgresStore;
use waitpoint_sqlite::SqliteStore;
use waitpoint_storage::Store;

/// The SQLite file's name inside the data directory.
const SQLITE_FILE: &str = "waitpoint.db";

/// Which database to use.
#[derive(Debug, Clone, Args)]
pub(crate) struct DatabaseArgs {
    /// Directory of the embedded SQLite database (used unless --database is given)
    #[arg(long, env = "WAITPOINT_DATA_DIR", default_value = ".waitpoint", global = true)]
    pub(crate) data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB
    #[arg(long, env = "WAITPOINT_DATABASE", global = true, hide_env_values = true)]
    pub(crate) database: Option<String>,
}

/// An opened store and a description of it for humans (no credentials).
pub(crate) struct Opened {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) description: String,
}

impl DatabaseArgs {
    /// Opens the store, applying migrations.
    pub(crate) async fn open(&self) -> anyhow::Result<Opened> {
        let url = self.database.clone();
        match url.as_deref() {
            None => self.open_sqlite(self.data_dir.join(SQLITE_FILE)).await,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let store = PostgresStore::connect(url).await.context("could not open the PostgreSQL database")?;
                Ok(Opened { store: Arc::new(store), description: format!("postgres: {}", redact(url)) })
            }
            Some(url) => match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
                Some(path) if !path.is_empty() => self.open_sqlite(PathBuf::from(path)).await,
                _ => bail!("unsupported --database {url:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB"),
            },
        }
    }

    async fn open_sqlite(&self, path: PathBuf) -> anyhow::Result<Opened> {
        let store = SqliteStore::open(&path)
            .await
            .with_context(|| format!("could not open the SQLite database {}", path.display()))?;
        Ok(Opened { store: Arc::new(store), description: format!("sqlite: {}", path.display()) })
    }
}

/// The URL without its password, for logs and banners.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_banner() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
