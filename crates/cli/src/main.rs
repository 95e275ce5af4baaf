//! `waitpoint`: the server, the CLI and the benchmark in one binary.
//!
//! # Layout
//! - `main.rs`: the command line (clap), parsed once into plain arguments.
//! - `database`: opening the store a `--database` URL or `--data-dir` names.
//! - `backup`: `waitpoint backup`.
//! - `vacuum`: `waitpoint vacuum`.
//! - `serve`: `waitpoint serve`.
//! - `environments`: `waitpoint env create|list|rotate-key`.
//! - `tokens`: `waitpoint token create|complete|get|list`.
//! - `runs`: `waitpoint run trigger|get|list|cancel`.
//! - `bench`: `waitpoint bench tokens|list`.
//! - `bench_runs`: `waitpoint bench runs` (the standard workload) and its worker.
//! - `bench_recovery`: `waitpoint bench recovery`.
//!
//! Data goes to stdout (JSON); messages and logs go to stderr.

/// glibc's allocator spends a quarter of the server's CPU under load (measured with `perf`);
/// mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backup;
mod bench;
mod bench_heartbeats;
mod bench_recovery;
mod bench_runs;
mod database;
mod environments;
mod runs;
mod serve;
mod tokens;
mod vacuum;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// waitpoint: task runs that pause until a waitpoint token is completed.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded SQLite by default, PostgreSQL with --database postgres://…).
    Serve(serve::ServeArgs),
    /// Manage environments (works on the database directly, also while the server runs).
    Env {
        #[command(subcommand)]
        command: environments::EnvCommand,
        #[command(flatten)]
        database: database::DatabaseArgs,
    },
    /// Create, complete, retrieve and list waitpoint tokens through the API.
    Token {
        #[command(subcommand)]
        command: tokens::TokenCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Trigger, retrieve, list and cancel task runs through the API.
    Run {
        #[command(subcommand)]
        command: runs::RunCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Copy the SQLite database consistently, also while the server runs.
    Backup(backup::BackupArgs),
    /// Rewrite an SQLite database made by an older waitpoint so that it shrinks as retention
    /// deletes (once; stop the server first).
    Vacuum(vacuum::VacuumArgs),
    /// Measure a running server.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

/// Where the API is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub(crate) struct ApiArgs {
    /// The API's URL [env: WAITPOINT_API_URL, or TRIGGER_API_URL; default http://127.0.0.1:3030]
    #[arg(long, global = true)]
    api_url: Option<String>,
    /// A secret key, or a token's public access token (complete only)
    /// [env: WAITPOINT_SECRET_KEY, or TRIGGER_SECRET_KEY]
    #[arg(long, global = true, hide_env_values = true)]
    secret_key: Option<String>,
}

impl ApiArgs {
    /// The URL: the flag, else what the SDK reads from the environment (`WAITPOINT_API_URL`,
    /// else `TRIGGER_API_URL`, else the local default).
    pub(crate) fn api_url(&self) -> String {
        self.api_url.clone().unwrap_or_else(waitpoint_sdk::env::api_url)
    }

    /// The key: the flag, else what the SDK reads from the environment (`WAITPOINT_SECRET_KEY`,
    /// else `TRIGGER_SECRET_KEY`).
    pub(crate) fn secret_key(&self) -> anyhow::Result<String> {
        self.secret_key
            .clone()
            .or_else(waitpoint_sdk::env::secret_key)
            .ok_or_else(|| anyhow::anyhow!("no secret key: pass --secret-key or set WAITPOINT_SECRET_KEY"))
    }

    pub(crate) fn client(&self) -> anyhow::Result<waitpoint_sdk::Client> {
        Ok(waitpoint_sdk::Client::new(&self.api_url(), &self.secret_key()?)?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Env { command, database } => environments::run(command, &database).await,
            Command::Token { command, api } => tokens::run(command, &api).await,
            Command::Run { command, api } => runs::run(command, &api).await,
            Command::Backup(args) => backup::run(args).await,
            Command::Vacuum(args) => vacuum::run(args).await,
            Command::Bench { command } => bench::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
