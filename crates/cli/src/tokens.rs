//! `waitpoint token`: the token API from the command line. Output is JSON on stdout.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use waitpoint_sdk::{CreateTokenRequest, ListFilter, RejectTokenRequest, Timestamp, WaitpointStatus};

use crate::ApiArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token; prints {id, isCached, url, publicAccessToken}.
    Create {
        /// Time out after this long ("10m", "1h30m") or at this ISO 8601 date; "none" for never
        #[arg(long)]
        timeout: Option<String>,
        /// Return the same token for the same key while the key is active
        #[arg(long)]
        idempotency_key: Option<String>,
        /// How long the key stays active ("1h"); "none" for forever
        #[arg(long = "idempotency-key-ttl")]
        idempotency_key_ttl: Option<String>,
        /// A tag (repeat for more, up to 10)
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// What the token's approval page asks, as JSON: {"title": …, "description": …, "fields": […]}
        #[arg(long)]
        approval: Option<String>,
        /// A JSON Schema (draft 2020-12) every completion's output must fit, as JSON
        #[arg(long)]
        output_schema: Option<String>,
        /// Time out unless a heartbeat comes at least this often ("30s"); prints a heartbeatUrl
        #[arg(long)]
        heartbeat_timeout: Option<String>,
        /// Check deliveries to the callback URL, as JSON: {"scheme": "github", "secret": …}
        /// (schemes: standard-webhooks, stripe, github, hmac-sha256)
        #[arg(long)]
        callback_verifier: Option<String>,
    },
    /// Complete a token with a JSON output.
    Complete {
        /// The token's id (waitpoint_…)
        id: String,
        /// The output, as JSON (quote strings: '"approved"'); without it, no output
        #[arg(long, conflicts_with = "data_file")]
        data: Option<String>,
        /// Read the JSON output from this file ("-" for stdin)
        #[arg(long)]
        data_file: Option<PathBuf>,
    },
    /// Reject a token with an error: a run waiting on it gets that error.
    Reject {
        /// The token's id (waitpoint_…)
        id: String,
        /// Why (1 to 10,000 characters)
        #[arg(long)]
        message: String,
        /// For programs, such as PAYMENT_DECLINED (default WAITPOINT_REJECTED)
        #[arg(long)]
        code: Option<String>,
        /// Anything else, as JSON
        #[arg(long)]
        data: Option<String>,
    },
    /// Send a token a heartbeat: it stays alive for another heartbeat interval.
    Heartbeat {
        /// The token's id (waitpoint_…)
        id: String,
    },
    /// Move a token's timeout later (logged for audit); heartbeats never do.
    Extend {
        /// The token's id (waitpoint_…)
        id: String,
        /// The new timeout: a duration from now ("1h") or an ISO 8601 date, later than the current one
        #[arg(long)]
        timeout: String,
    },
    /// Retrieve a token with its output (or timeout or rejection error).
    Get {
        /// The token's id (waitpoint_…)
        id: String,
    },
    /// List tokens, newest first, one JSON object per line, following every page.
    List {
        /// Only these statuses: WAITING, COMPLETED, TIMED_OUT (repeat or comma-separate)
        #[arg(long = "status", value_delimiter = ',')]
        statuses: Vec<String>,
        /// Only tokens created with this idempotency key
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Only tokens with any of these tags (repeat or comma-separate)
        #[arg(long = "tag", value_delimiter = ',')]
        tags: Vec<String>,
        /// Only tokens created within this period: 1h, 1d, 7d, 30d, …
        #[arg(long)]
        period: Option<String>,
        /// Only tokens created at or after this ISO 8601 date
        #[arg(long)]
        from: Option<String>,
        /// Only tokens created at or before this ISO 8601 date
        #[arg(long)]
        to: Option<String>,
        /// Tokens fetched per request (1-100)
        #[arg(long)]
        page_size: Option<u32>,
        /// Stop after this many tokens
        #[arg(long)]
        limit: Option<usize>,
    },
}

pub(crate) async fn run(command: TokenCommand, api: &ApiArgs) -> anyhow::Result<()> {
    let client = api.client()?;
    match command {
        TokenCommand::Create {
            timeout,
            idempotency_key,
            idempotency_key_ttl,
            tags,
            approval,
            output_schema,
            heartbeat_timeout,
            callback_verifier,
        } => {
            let tags = (!tags.is_empty()).then_some(tags);
            let approval = json_flag(approval, "--approval must be a JSON object such as {\"title\": \"Publish?\"}")?;
            let output_schema =
                json_flag(output_schema, "--output-schema must be a JSON Schema such as {\"type\": \"object\"}")?;
            let callback_verifier = json_flag(
                callback_verifier,
                "--callback-verifier must be JSON such as {\"scheme\": \"github\", \"secret\": \"…\"}",
            )?;
            let request = CreateTokenRequest {
                timeout,
                idempotency_key,
                idempotency_key_ttl,
                tags,
                approval,
                output_schema,
                heartbeat_timeout,
                callback_verifier,
            };
            print_pretty(&client.create_token(request).await?)?;
        }
        TokenCommand::Complete { id, data, data_file } => {
            let text = match (data, data_file) {
                (Some(data), _) => Some(data),
                (None, Some(path)) if path.as_os_str() == "-" => {
                    Some(std::io::read_to_string(std::io::stdin()).context("could not read stdin")?)
                }
                (None, Some(path)) => {
                    Some(std::fs::read_to_string(&path).with_context(|| format!("could not read {}", path.display()))?)
                }
                (None, None) => None,
            };
            match text {
                Some(text) => {
                    let output: serde_json::Value = serde_json::from_str(&text)
                        .context("the output must be JSON (quote a string: '\"approved\"')")?;
                    client.complete_token(&id, &output).await?;
                }
                None => client.complete_token_without_output(&id).await?,
            }
            print_pretty(&serde_json::json!({ "success": true }))?;
        }
        TokenCommand::Reject { id, message, code, data } => {
            let mut rejection = RejectTokenRequest::new(message);
            rejection.error.code = code;
            rejection.error.data = json_flag(data, "--data must be JSON (quote a string: '\"declined\"')")?;
            client.reject_token(&id, &rejection).await?;
            print_pretty(&serde_json::json!({ "success": true }))?;
        }
        TokenCommand::Heartbeat { id } => print_pretty(&client.heartbeat_token(&id).await?)?,
        TokenCommand::Extend { id, timeout } => print_pretty(&client.extend_token(&id, timeout).await?)?,
        TokenCommand::Get { id } => print_pretty(&client.retrieve_token(&id).await?.detail)?,
        TokenCommand::List { statuses, idempotency_key, tags, period, from, to, page_size, limit } => {
            let all: Vec<&str> = WaitpointStatus::ALL.iter().map(|s| s.as_str()).collect();
            let filter = ListFilter {
                statuses: parse_statuses(&statuses, WaitpointStatus::parse, &all)?,
                idempotency_key,
                tags,
                period,
                from: from.as_deref().map(date).transpose()?,
                to: to.as_deref().map(date).transpose()?,
                page_size,
            };
            print_lines(client.list_tokens(filter), limit).await?;
        }
    }
    Ok(())
}

/// A flag given as JSON, read as `T`; `hint` says what the flag takes when it does not fit.
fn json_flag<T: serde::de::DeserializeOwned>(text: Option<String>, hint: &'static str) -> anyhow::Result<Option<T>> {
    text.map(|text| serde_json::from_str(&text)).transpose().context(hint)
}

pub(crate) fn date(text: &str) -> anyhow::Result<Timestamp> {
    match Timestamp::parse_iso8601(text) {
        Some(at) => Ok(at),
        None => bail!("{text:?} is not an ISO 8601 date such as 2025-04-01T10:00:00Z"),
    }
}

/// Reads `--status` values with `parse`; `all` names the statuses it knows.
pub(crate) fn parse_statuses<S>(
    values: &[String],
    parse: fn(&str) -> Option<S>,
    all: &[&str],
) -> anyhow::Result<Vec<S>> {
    values
        .iter()
        .map(|value| parse(value).ok_or_else(|| anyhow::anyhow!("unknown status {value:?}: use {}", all.join(", "))))
        .collect()
}

/// Prints the items of a list, one JSON object per line, at most `limit` of them; returns how
/// many it printed.
pub(crate) async fn print_lines<T: Serialize>(
    items: impl Stream<Item = waitpoint_sdk::Result<T>>,
    limit: Option<usize>,
) -> anyhow::Result<usize> {
    let mut items = std::pin::pin!(items.take(limit.unwrap_or(usize::MAX)));
    let mut printed = 0;
    while let Some(item) = items.next().await {
        println!("{}", serde_json::to_string(&item?)?);
        printed += 1;
    }
    Ok(printed)
}

pub(crate) fn print_pretty(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
