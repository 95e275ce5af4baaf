//! Opening the store: `--database sqlite://PATH` or `postgres://…`, else SQLite in `--data-dir`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use waitpoint_postgres::{PostgresStore, WakeupMode};
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

/// An opened store, a description of it for humans (no credentials), and what its owner should
/// know about it (such as files other users can read).
pub(crate) struct Opened {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) description: String,
    pub(crate) warnings: Vec<String>,
}

/// Where the database is, as the options name it.
pub(crate) enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (it may hold a password: never print it unredacted).
    Postgres(String),
}

impl DatabaseArgs {
    /// Where the options say the database is: `--database`, else SQLite in `--data-dir`.
    pub(crate) fn location(&self) -> anyhow::Result<Location> {
        let Some(url) = self.database.as_deref() else { return Ok(Location::Sqlite(self.data_dir.join(SQLITE_FILE))) };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres(url.to_owned()));
        }
        match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            Some(path) if !path.is_empty() => Ok(Location::Sqlite(PathBuf::from(path))),
            // Never echo the value: it may be a connection string with a password in it.
            _ => match url.split_once("://") {
                Some((scheme, _)) if scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+') => {
                    bail!("unsupported --database scheme {scheme:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")
                }
                _ => bail!(
                    "unsupported --database value (not shown: it may hold a password): use sqlite://PATH or \
                     postgres://USER:PASSWORD@HOST:PORT/DB"
                ),
            },
        }
    }

    /// Opens the store, applying migrations.
    pub(crate) async fn open(&self) -> anyhow::Result<Opened> {
        self.open_with(WakeupMode::Listen).await
    }

    /// Opens the store, applying migrations; nodes on a PostgreSQL database wake each other as
    /// `wakeups` says.
    pub(crate) async fn open_with(&self, wakeups: WakeupMode) -> anyhow::Result<Opened> {
        match self.location()? {
            Location::Sqlite(path) => self.open_sqlite(path).await,
            Location::Postgres(url) => {
                let store = PostgresStore::connect_with(&url, wakeups)
                    .await
                    .context("could not open the PostgreSQL database")?;
                let description = format!("postgres: {}", redact(&url));
                Ok(Opened { store: Arc::new(store), description, warnings: Vec::new() })
            }
        }
    }

    async fn open_sqlite(&self, path: PathBuf) -> anyhow::Result<Opened> {
        let store = SqliteStore::open(&path)
            .await
            .with_context(|| format!("could not open the SQLite database {}", path.display()))?;
        let mut warnings = readable_by_others(&path);
        if !store.returns_free_pages().await.context("could not read the SQLite database's settings")? {
            warnings.push(format!(
                "the database {} was made by a waitpoint that did not give freed space back: the space of records \
                 retention deletes is reused, but the file never shrinks; to make it shrink, stop the server and run \
                 `waitpoint vacuum` once (it rewrites the file)",
                path.display()
            ));
        }
        Ok(Opened { store: Arc::new(store), description: format!("sqlite: {}", path.display()), warnings })
    }
}

/// What of the SQLite database (its directory and file, which hold secret keys and signing
/// secrets) other users may read or change, with how to stop it. New ones are private.
fn readable_by_others(path: &Path) -> Vec<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let directory = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        [(directory, 0o700, "directory"), (path, 0o600, "file")]
            .into_iter()
            .filter_map(|(item, private, what)| {
                let mode = std::fs::metadata(item).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then(|| {
                    format!(
                        "the database {what} {} is open to other users (mode {mode:o}) and holds secret keys: \
                         run chmod {private:o} {}",
                        item.display(),
                        item.display()
                    )
                })
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Vec::new()
    }
}

/// The URL without its password (the user-info part's and a `password` parameter's), for logs
/// and banners.
fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match base[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| {
                let name = parameter.split_once('=').map_or(parameter, |(name, _)| name);
                let decoded: String = form_urlencoded::parse(name.as_bytes()).map(|(name, _)| name).collect();
                if decoded.eq_ignore_ascii_case("password") { format!("{name}=***") } else { parameter.to_owned() }
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_banner() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=disable&password=secret&options=-c%20a%3Db"),
            "postgres://u@h/db?sslmode=disable&password=***&options=-c%20a%3Db"
        );
        assert_eq!(redact("postgres://h/db?PassWord=secret"), "postgres://h/db?PassWord=***");
        assert_eq!(redact("postgres://h/db?pass%77ord=secret"), "postgres://h/db?pass%77ord=***");
        assert_eq!(redact("postgres://u:p@ss@h/db?application_name=a@b"), "postgres://u:***@h/db?application_name=a@b");
    }
}
