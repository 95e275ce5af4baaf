//! `waitpoint run`: trigger, retrieve, list and cancel runs through the API. Output is JSON on
//! stdout.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use waitpoint_sdk::{RunFilter, RunStatus, TriggerOptions};

use crate::ApiArgs;
use crate::tokens::{date, parse_statuses, print_lines, print_pretty};

#[derive(Debug, Subcommand)]
pub(crate) enum RunCommand {
    /// Trigger a run of a task; prints {id, isCached}, and on stderr what the server hints at
    /// (such as that no worker serves the task).
    Trigger {
        /// The task's id
        task: String,
        /// The payload, as JSON (default null)
        #[arg(long, conflicts_with = "payload_file")]
        payload: Option<String>,
        /// Read the JSON payload from this file ("-" for stdin)
        #[arg(long)]
        payload_file: Option<PathBuf>,
        /// Return the same run for the same key (per task) while the key is active
        #[arg(long)]
        idempotency_key: Option<String>,
        /// How long the key stays active ("1h"); "none" for forever
        #[arg(long = "idempotency-key-ttl")]
        idempotency_key_ttl: Option<String>,
        /// A tag (repeat for more, up to 10)
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Attempts before the run fails (default: the server's, 3)
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Start after this long ("10m") or at this ISO 8601 date
        #[arg(long)]
        delay: Option<String>,
    },
    /// Retrieve a run: status, payload, output or error, attempts, what it waits on, the worker
    /// that holds it, and the server's hint.
    Get {
        /// The run's id (run_…)
        id: String,
    },
    /// List runs, newest first, one JSON object per line, following every page (none: a note on
    /// stderr).
    List {
        /// Only these statuses: QUEUED, DELAYED, EXECUTING, WAITING, COMPLETED, FAILED, CANCELED
        #[arg(long = "status", value_delimiter = ',')]
        statuses: Vec<String>,
        /// Only runs of these tasks (repeat or comma-separate)
        #[arg(long = "task", value_delimiter = ',')]
        tasks: Vec<String>,
        /// Only runs triggered with this idempotency key
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Only runs with any of these tags (repeat or comma-separate)
        #[arg(long = "tag", value_delimiter = ',')]
        tags: Vec<String>,
        /// Only runs created within this period: 1h, 1d, 7d, 30d, …
        #[arg(long)]
        period: Option<String>,
        /// Only runs created at or after this ISO 8601 date
        #[arg(long)]
        from: Option<String>,
        /// Only runs created at or before this ISO 8601 date
        #[arg(long)]
        to: Option<String>,
        /// Runs fetched per request (1-100)
        #[arg(long)]
        page_size: Option<u32>,
        /// Stop after this many runs
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Cancel a run that has not finished (a waiting one too).
    Cancel {
        /// The run's id (run_…)
        id: String,
    },
}

pub(crate) async fn run(command: RunCommand, api: &ApiArgs) -> anyhow::Result<()> {
    let client = api.client()?;
    match command {
        RunCommand::Trigger {
            task,
            payload,
            payload_file,
            idempotency_key,
            idempotency_key_ttl,
            tags,
            max_attempts,
            delay,
        } => {
            let text = match (payload, payload_file) {
                (Some(payload), _) => payload,
                (None, Some(path)) if path.as_os_str() == "-" => {
                    std::io::read_to_string(std::io::stdin()).context("could not read stdin")?
                }
                (None, Some(path)) => {
                    std::fs::read_to_string(&path).with_context(|| format!("could not read {}", path.display()))?
                }
                (None, None) => "null".to_owned(),
            };
            let payload: serde_json::Value =
                serde_json::from_str(&text).context("the payload must be JSON (quote a string: '\"hello\"')")?;
            let tags = (!tags.is_empty()).then_some(tags);
            let options = TriggerOptions { idempotency_key, idempotency_key_ttl, tags, max_attempts, delay };
            let triggered = client.trigger(&task, &payload, Some(options)).await?;
            print_pretty(&triggered)?;
            if let Some(hint) = &triggered.hint {
                eprintln!("hint: {hint}");
            }
        }
        RunCommand::Get { id } => print_pretty(&client.retrieve_run(&id).await?)?,
        RunCommand::Cancel { id } => print_pretty(&client.cancel_run(&id).await?)?,
        RunCommand::List { statuses, tasks, idempotency_key, tags, period, from, to, page_size, limit } => {
            let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            let filter = RunFilter {
                statuses: parse_statuses(&statuses, RunStatus::parse, &all)?,
                task_ids: tasks,
                idempotency_key,
                tags,
                period,
                from: from.as_deref().map(date).transpose()?,
                to: to.as_deref().map(date).transpose()?,
                page_size,
            };
            if print_lines(client.list_runs(filter), limit).await? == 0 {
                eprintln!("no runs match");
            }
        }
    }
    Ok(())
}
