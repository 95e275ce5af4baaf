//! `waitpoint serve`: raise the open-file limit, open the database, make sure the dev
//! environment exists, start the engine and serve the API, the dashboard and the approval pages
//! until SIGINT or SIGTERM, then drain (within the shutdown timeout) and stop. The banner names
//! the dashboard's address and a one-time sign-in link for `dev` (15 minutes, single use).

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::watch;
use waitpoint_engine::environments::{DEV_ENVIRONMENT, ensure_environment};
use waitpoint_engine::{Engine, EngineConfig, SIGN_IN_LINK_LIFETIME, SystemClock, WebhookPolicy};
use waitpoint_postgres::WakeupMode;
use waitpoint_server::{ServeConfig, descriptors};
use waitpoint_types::Secret;
use waitpoint_types::time::parse_duration;

use crate::database::DatabaseArgs;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "WAITPOINT_LISTEN", default_value = "127.0.0.1:3030")]
    listen: String,
    #[command(flatten)]
    database: DatabaseArgs,
    /// How nodes on one PostgreSQL database wake each other: listen (LISTEN/NOTIFY, at once) or poll (each looks every second; for a transaction-pooling proxy such as PgBouncer in transaction mode)
    #[arg(long, env = "WAITPOINT_POSTGRES_WAKEUPS", default_value = "listen")]
    postgres_wakeups: PostgresWakeups,
    /// Origin used in token URLs, such as https://waitpoint.example.com [default: http://<listen address>]
    #[arg(long, env = "WAITPOINT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Timeout of tokens created without one ("none": wait forever)
    #[arg(long, env = "WAITPOINT_DEFAULT_TIMEOUT", default_value = "10m")]
    default_timeout: String,
    /// Time to live of idempotency keys given without one ("none": never expire)
    #[arg(long = "default-idempotency-key-ttl", env = "WAITPOINT_DEFAULT_IDEMPOTENCY_KEY_TTL", default_value = "1h")]
    default_idempotency_key_ttl: String,
    /// Attempts of runs triggered without maxAttempts
    #[arg(long, env = "WAITPOINT_DEFAULT_MAX_ATTEMPTS", default_value_t = 3)]
    default_max_attempts: u32,
    /// Finished tokens and runs (with their journals) are deleted this long after they finish ("none": keep everything)
    #[arg(long, env = "WAITPOINT_RETENTION", default_value = "30d")]
    retention: String,
    /// A worker not heard from for this long is presumed gone; its runs resume on other workers
    #[arg(long, env = "WAITPOINT_WORKER_TIMEOUT", default_value = "30s")]
    worker_timeout: String,
    /// Use this secret key for the dev environment (tr_dev_ followed by letters and digits)
    #[arg(long, env = "WAITPOINT_DEV_SECRET_KEY", hide_env_values = true)]
    dev_secret_key: Option<String>,
    /// Time a client has to send a request's head, from connecting or from the request's first byte
    #[arg(long, env = "WAITPOINT_HEADER_TIMEOUT", default_value = "10s")]
    header_timeout: String,
    /// Time a client has to send a request's body, from the end of its head (408 after it)
    #[arg(long, env = "WAITPOINT_BODY_TIMEOUT", default_value = "30s")]
    body_timeout: String,
    /// Time a kept-alive connection may stay without a new request once an answer is ready
    #[arg(long, env = "WAITPOINT_IDLE_TIMEOUT", default_value = "60s")]
    idle_timeout: String,
    /// Connections served at once; more wait until one closes [default: half the open-file limit, at most 10000]
    #[arg(long, env = "WAITPOINT_MAX_CONNECTIONS")]
    max_connections: Option<NonZeroUsize>,
    /// On SIGINT or SIGTERM, time the requests in flight get before their connections are closed
    #[arg(long, env = "WAITPOINT_SHUTDOWN_TIMEOUT", default_value = "10s")]
    shutdown_timeout: String,
    /// Serve Prometheus metrics (GET /metrics, no key) on this address, such as 127.0.0.1:9464; keep it private [default: off]
    #[arg(long, env = "WAITPOINT_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Let webhooks deliver to loopback, private and link-local addresses (receivers on this machine or network)
    #[arg(long, env = "WAITPOINT_WEBHOOKS_ALLOW_PRIVATE")]
    webhooks_allow_private: bool,
    /// Let webhooks deliver only to these hosts (comma-separated) [default: any public host]
    #[arg(long, env = "WAITPOINT_WEBHOOKS_ALLOWED_HOSTS", value_delimiter = ',')]
    webhooks_allowed_hosts: Vec<String>,
    /// Log format: text or json (level from WAITPOINT_LOG or RUST_LOG, default info)
    #[arg(long, env = "WAITPOINT_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PostgresWakeups {
    Listen,
    Poll,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let default_timeout = optional_duration("--default-timeout", &args.default_timeout)?;
    let default_ttl = optional_duration("--default-idempotency-key-ttl", &args.default_idempotency_key_ttl)?;
    let retention = optional_duration("--retention", &args.retention)?;
    let dev_key = args.dev_secret_key.as_deref().map(dev_secret_key).transpose()?;
    let worker_timeout = parse_duration(&args.worker_timeout).context("invalid --worker-timeout")?;
    if !(1..=100).contains(&args.default_max_attempts) {
        bail!("--default-max-attempts must be from 1 to 100");
    }
    let serve_config = ServeConfig {
        header_timeout: parse_duration(&args.header_timeout).context("invalid --header-timeout")?,
        body_timeout: parse_duration(&args.body_timeout).context("invalid --body-timeout")?,
        idle_timeout: parse_duration(&args.idle_timeout).context("invalid --idle-timeout")?,
        max_connections: args.max_connections,
        shutdown_timeout: parse_duration(&args.shutdown_timeout).context("invalid --shutdown-timeout")?,
    };
    raise_descriptor_limit();

    let wakeups = match args.postgres_wakeups {
        PostgresWakeups::Listen => WakeupMode::Listen,
        PostgresWakeups::Poll => WakeupMode::Poll,
    };
    let opened = args.database.open_with(wakeups).await?;
    for warning in &opened.warnings {
        tracing::warn!("{warning}");
    }
    let (dev, created) = ensure_environment(&*opened.store, &SystemClock, DEV_ENVIRONMENT, dev_key.as_ref()).await?;
    let listener =
        TcpListener::bind(&args.listen).await.with_context(|| format!("could not listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let metrics = match &args.metrics_listen {
        Some(listen) => {
            let handle = waitpoint_server::metrics::install().context("could not install the metrics recorder")?;
            let listener =
                TcpListener::bind(listen).await.with_context(|| format!("could not listen on {listen} for metrics"))?;
            tracing::info!(address = %listener.local_addr()?, "serving metrics at /metrics");
            Some((listener, handle))
        }
        None => None,
    };
    let public_url = match args.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None if address.ip().is_unspecified() => format!("http://localhost:{}", address.port()),
        None => format!("http://{address}"),
    };
    let config = EngineConfig {
        public_url: public_url.clone(),
        default_timeout,
        default_idempotency_key_ttl: default_ttl,
        default_max_attempts: args.default_max_attempts,
        worker_timeout,
        retention,
        webhooks: WebhookPolicy {
            allow_private: args.webhooks_allow_private,
            allowed_hosts: args.webhooks_allowed_hosts.iter().map(|host| host.trim().to_ascii_lowercase()).collect(),
        },
        ..EngineConfig::default()
    };
    let engine = Engine::start(opened.store, Arc::new(SystemClock), config);

    tracing::info!(%address, database = %opened.description, retention = %args.retention, "waitpoint is ready");
    println!("waitpoint {} listening on http://{address} ({})", env!("CARGO_PKG_VERSION"), opened.description);
    // The key is shown once, when it is made; otherwise the banner says where it is.
    let key = match (created, dev_key.is_some()) {
        (true, false) => {
            println!("Created environment \"dev\", secret key: {}", dev.api_key.expose());
            dev.api_key.expose()
        }
        (_, true) => {
            println!(
                "Using environment \"dev\" with the secret key given by --dev-secret-key or WAITPOINT_DEV_SECRET_KEY"
            );
            "$WAITPOINT_SECRET_KEY"
        }
        (false, false) => {
            println!("Using environment \"dev\"; its secret key is in the database (waitpoint env list prints it)");
            "$WAITPOINT_SECRET_KEY"
        }
    };
    println!(
        "Try: curl -X POST {public_url}/api/v1/waitpoints/tokens -H \"Authorization: Bearer {key}\" \
         -H \"Content-Type: application/json\" -d '{{\"timeout\":\"10m\"}}'"
    );
    println!("Dashboard: {public_url}/ (sign in with an environment's secret key)");
    // The link carries a one-time secret, never a key; it is printed, not logged.
    println!(
        "Sign in to \"dev\" with this link (once, within {} minutes): {public_url}/sign-in/link/{}",
        SIGN_IN_LINK_LIFETIME.as_secs() / 60,
        engine.sign_in_link(&dev)
    );

    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.send_replace(true);
    });
    let stopped = move |mut stopping: watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    if let Some((listener, handle)) = metrics {
        tokio::spawn(waitpoint_server::metrics::serve(listener, handle, engine.clone(), stopped(stopping.clone())));
    }
    waitpoint_server::serve_with(listener, engine.clone(), serve_config, stopped(stopping)).await;
    tracing::info!("stopped taking requests; finishing queued writes");
    engine.shutdown().await;
    tracing::info!("waitpoint stopped");
    Ok(())
}

fn optional_duration(flag: &str, text: &str) -> anyhow::Result<Option<Duration>> {
    if text == "none" {
        return Ok(None);
    }
    parse_duration(text).map(Some).with_context(|| format!("invalid {flag} (a duration, or \"none\")"))
}

/// Raises the open-file soft limit as far as the hard limit allows: every connection takes a
/// descriptor, and the default connection cap is half the limit.
fn raise_descriptor_limit() {
    let before = descriptors::limit();
    match descriptors::raise_limit() {
        Ok(after) => {
            if let (Some(before), Some(after)) = (before, after)
                && after > before
            {
                tracing::info!(before, after, "raised the open-file limit");
            }
        }
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
}

fn dev_secret_key(key: &str) -> anyhow::Result<Secret> {
    let suffix = key.strip_prefix("tr_dev_").unwrap_or_default();
    if suffix.len() < 8 || !suffix.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!(
            "WAITPOINT_DEV_SECRET_KEY must be tr_dev_ followed by at least 8 letters or digits (24 like Trigger.dev's keys)"
        );
    }
    Ok(Secret::new(key.to_owned()))
}

fn init_logging(format: LogFormat) {
    let filter =
        std::env::var("WAITPOINT_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested");
}
