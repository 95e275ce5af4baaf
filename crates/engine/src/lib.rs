//! The waitpoint engine: what happens to tokens and runs, independent of HTTP and of the
//! database.
//!
//! [`Engine`] authenticates callers, validates and applies token operations (create,
//! complete, retrieve, list) and run operations (trigger, the worker protocol, cancel),
//! commits writes in groups, times tokens out durably, gives the runs of stopped workers to
//! others, and deletes what finished longer ago than the retention. For people, it opens
//! dashboard sessions, does what an operator asks (complete or time out tokens, one or in bulk;
//! skip a wait; an overview), answers approval pages, and tells what changes as it changes. It reads time only from an injected [`Clock`] and
//! reaches storage only through the [`Store`] trait.
//!
//! # Layout
//! - [`auth`]: secret keys, public access tokens, callback URL and approval page signatures,
//!   dashboard sessions.
//! - [`environments`]: creating and re-keying environments.
//! - `tokens`: the token operations and their validation.
//! - `rejections`: rejecting a token with an error (by a caller, or through its reject URL).
//! - `heartbeats`: keeping a token alive: heartbeats (by a caller, or through its heartbeat
//!   URL) and audited extends of its timeout.
//! - `verifiers`: checking the signatures of deliveries to a token's callback URL against its
//!   `callbackVerifier` (Standard Webhooks, Stripe, GitHub, HMAC-SHA256).
//! - `pages`: keyset pages of the token and run lists.
//! - `runs`: task runs, and the worker protocol's calls about a run (journal, waits, attempts).
//! - `workers`: workers' polls (claims, sessions, liveness, the tasks they serve), the runs
//!   handed to them, and the release of stopped workers' runs.
//! - `handoffs`: which workers take resumed runs handed straight to them (a poll waiting on this
//!   node, a slot to spare).
//! - `mailboxes`: what this node keeps of each worker between its polls: runs handed to it,
//!   its newest poll, when what it holds was last compared, what the last answer carried.
//! - `validate`: checks shared by tokens and runs (tags, idempotency keys).
//! - `sessions`: signing in to the dashboard (a secret key, or a one-time link) and sessions.
//! - `operator`: what a person does from the dashboard: complete or time out tokens (one, or
//!   in bulk by ids or by a filter up to a cutoff), skip a datetime wait, the overview.
//! - `approvals`: the hosted approval pages: their URLs, and answering them.
//! - `events`: [`Event`]s, what changes as it changes, for those who listen.
//! - `event_log`: reading the durable event log by position, filtered ([`EventFilter`]), and
//!   waiting for more.
//! - `webhooks`: outbound webhook subscriptions, and the loop that delivers the event log to
//!   them (signed, in order, at least once, never to internal addresses unless allowed).
//! - `writer`: group commit of writes.
//! - `timeouts`: the durable timeout loop.
//! - `wakeups`: the loop that wakes this node's polls and timeout loop for writes through other
//!   nodes sharing the database.
//! - `retention`: the loop that deletes what finished longer ago than the retention, and
//!   [`RetentionReport`], what it deleted.
//! - `upkeep`: the loop that has the store tidy what its database does not (vacuums where
//!   PostgreSQL's autovacuum is off).
//! - [`error`]: [`EngineError`], one variant per kind of failure.
//! - [`metrics`]: what the engine counts and times (recorded only when a recorder is installed).

mod approvals;
pub mod auth;
pub mod environments;
pub mod error;
mod event_log;
mod events;
mod handoffs;
mod heartbeats;
mod mailboxes;
pub mod metrics;
mod operator;
mod pages;
mod rejections;
mod retention;
mod runs;
mod sessions;
mod timeouts;
mod tokens;
mod upkeep;
mod validate;
mod verifiers;
mod wakeups;
mod webhooks;
mod workers;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use waitpoint_storage::{Resumed, StorageError, Store, Takers};
use waitpoint_types::{Environment, EnvironmentId, IdGenerator, Timestamp, Waitpoint};

pub use crate::approvals::VerifiedApproval;
pub use crate::auth::Principal;
pub use crate::error::{EngineError, Result};
pub use crate::event_log::{EventFilter, EventPage, RECHECK};
pub use crate::events::Event;
pub use crate::operator::{
    BulkItem, BulkOutcome, BulkPreview, BulkTarget, COUNT_CAP, MAX_BULK_IDS, Overview, Resolution,
};
pub use crate::pages::{DEFAULT_PAGE_SIZE, ListPage, MAX_PAGE_SIZE};
pub use crate::rejections::{MAX_REJECTION_CODE, MAX_REJECTION_MESSAGE, REJECT_URL_MESSAGE, checked_rejection};
pub use crate::retention::RetentionReport;
pub use crate::runs::{ListRuns, RunPage, RunView, TriggeredRun, WaitAnswer};
pub use crate::sessions::{SESSION_LIFETIME, SIGN_IN_LINK_LIFETIME, Session, SignedIn};
pub use crate::tokens::{CreatedToken, ListTokens, TokenPage, VerifiedCallback};
pub use crate::webhooks::{MAX_WEBHOOKS, NewWebhook, WebhookPolicy};
pub use waitpoint_clock::{Clock, SystemClock};

/// How long an environment looked up by key stays cached. A rotated key keeps working on a
/// node for at most this long.
const ENVIRONMENT_CACHE_TTL: Duration = Duration::from_secs(5);

/// Settings of an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The origin in token URLs, such as `https://waitpoint.example.com` (no trailing slash).
    pub public_url: String,
    /// Timeout of tokens created without one; `None` waits forever. The spec's default is 10 minutes.
    pub default_timeout: Option<Duration>,
    /// Time to live of idempotency keys given without one; `None` never expires. The spec's default is 1 hour.
    pub default_idempotency_key_ttl: Option<Duration>,
    /// The most writes committed in one transaction.
    pub max_batch: usize,
    /// Attempts of runs triggered without `maxAttempts`.
    pub default_max_attempts: u32,
    /// A worker not heard from (polls) for this long is presumed gone; its runs are given to
    /// other workers, which replay them.
    pub worker_timeout: Duration,
    /// How long a resumed run stays reserved for the worker that suspended it (which continues
    /// it in memory, without replay) before any worker may take it.
    pub sticky_for: Duration,
    /// Finished tokens and runs (with their journals) are deleted once they finished this long
    /// ago, unless still needed (the rule is `waitpoint_storage::Purge`'s); `None` keeps
    /// everything, the default here. The server's default is 30 days.
    pub retention: Option<Duration>,
    /// Where outbound webhooks may deliver.
    pub webhooks: WebhookPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:3030".into(),
            default_timeout: Some(Duration::from_secs(10 * 60)),
            default_idempotency_key_ttl: Some(Duration::from_secs(60 * 60)),
            max_batch: 512,
            default_max_attempts: 3,
            worker_timeout: Duration::from_secs(30),
            sticky_for: Duration::from_secs(2),
            retention: None,
            webhooks: WebhookPolicy::default(),
        }
    }
}

/// The engine. Cheap to clone; all clones share one state.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    pub(crate) ids: IdGenerator,
    pub(crate) writer: writer::Writer,
    environments: EnvironmentCache,
    /// Woken when runs become ready for workers (triggered, resumed, retried, released).
    pub(crate) runs_ready: Notify,
    /// Woken when a token gets a deadline earlier than the timeout loop's next wake-up.
    pub(crate) timer_wake: Notify,
    /// Woken when a webhook subscription is made, so that delivery starts at once.
    pub(crate) webhooks_changed: Notify,
    /// The timeout loop's next wake-up (ms); `i64::MAX` while it is being worked out.
    pub(crate) next_timer_wake: AtomicI64,
    events: broadcast::Sender<Event>,
    /// One-time sign-in links not used yet: the digest of each link's secret, its environment
    /// and when it expires. Kept in this node's memory only.
    pub(crate) sign_in_links: Mutex<HashMap<Vec<u8>, (EnvironmentId, Timestamp)>>,
    /// What this node knows of workers, and the runs handed to them.
    pub(crate) workers: workers::Workers,
    /// What the retention loop deleted so far.
    pub(crate) retention: watch::Sender<RetentionReport>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Starts an engine on `store`: the write lanes, the timeout loop (which first fires every
    /// deadline that passed while nothing was running), the release of stopped workers' runs,
    /// with a retention, the loop that deletes what finished before it (first at once), the
    /// store's upkeep, and when the store has wake-ups from other nodes, the loop that acts on
    /// them.
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: EngineConfig) -> Self {
        let (shutdown, stop) = watch::channel(false);
        let (writer, mut tasks) = writer::Writer::start(store.clone(), config.max_batch, stop.clone());
        let inner = Arc::new(Inner {
            store,
            clock,
            config,
            ids: IdGenerator::new(),
            writer,
            environments: EnvironmentCache::default(),
            runs_ready: Notify::new(),
            timer_wake: Notify::new(),
            webhooks_changed: Notify::new(),
            next_timer_wake: AtomicI64::new(i64::MAX),
            events: broadcast::channel(events::EVENT_BUFFER).0,
            sign_in_links: Mutex::new(HashMap::new()),
            workers: workers::Workers::default(),
            retention: watch::Sender::new(RetentionReport::default()),
            shutdown,
            tasks: Mutex::new(Vec::new()),
        });
        tasks.push(tokio::spawn(timeouts::run(inner.clone(), stop.clone())));
        if let Some(retention) = inner.config.retention {
            tasks.push(tokio::spawn(retention::run(inner.clone(), retention, stop.clone())));
        }
        tasks.push(tokio::spawn(webhooks::run(inner.clone(), stop.clone())));
        tasks.push(tokio::spawn(upkeep::run(inner.clone(), stop.clone())));
        if let Some(wakeups) = inner.store.wakeups() {
            tasks.push(tokio::spawn(wakeups::run(inner.clone(), wakeups, stop.clone())));
        }
        tasks.push(tokio::spawn(workers::release_loop(inner.clone(), stop)));
        *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Self { inner }
    }

    /// Stops the loops, and the write lanes after they apply what is already queued.
    /// Writes submitted afterwards fail with [`EngineError::ShuttingDown`].
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "engine task failed during shutdown");
            }
        }
    }

    /// The store, for health checks and administration.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Whether this node can serve: it is not stopping, the database answers, and its schema is
    /// the one this build knows. The reason when not, for operators and load balancers.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        if self.polls_released() {
            return Err("the server is stopping".into());
        }
        match self.inner.store.schema_versions().await {
            Ok(versions) if versions.applied == versions.known => Ok(()),
            Ok(versions) if versions.applied > versions.known => Err(format!(
                "the database schema is at version {}, newer than this build's {}: a newer waitpoint migrated it; \
                 upgrade this node",
                versions.applied, versions.known
            )),
            Ok(versions) => Err(format!(
                "the database schema is at version {} of {}: its migrations are not applied",
                versions.applied, versions.known
            )),
            Err(error) => Err(format!("the database does not answer: {error}")),
        }
    }

    /// Identifies the caller from the bearer credential of `Authorization: Bearer <credential>`:
    /// a secret key, or a public access token.
    pub async fn authenticate(&self, credential: Option<&str>) -> Result<Principal> {
        let credential = credential.map(str::trim).filter(|c| !c.is_empty()).ok_or_else(|| {
            EngineError::Unauthenticated(
                "Invalid or Missing API key: send the header `Authorization: Bearer <secret key>`".into(),
            )
        })?;
        if let Some(subject) = auth::public_token_subject(credential) {
            let invalid = || EngineError::Unauthenticated("Public Access Token is invalid".into());
            let id = EnvironmentId::parse(&subject).map_err(|_| invalid())?;
            let environment = self.inner.environment_by_id(&id).await.map_err(|error| match error {
                EngineError::NotFound(_) => invalid(),
                other => other,
            })?;
            let claims =
                auth::verify_public_token(credential, &environment, self.inner.clock.now()).ok_or_else(invalid)?;
            return Ok(Principal::PublicAccessToken { environment, scopes: claims.scopes });
        }
        self.inner.environment_by_api_key(credential).await.map(Principal::SecretKey)
    }

    /// Like [`authenticate`](Self::authenticate), for routes that only a secret key may call.
    pub async fn authenticate_secret_key(&self, credential: Option<&str>) -> Result<Environment> {
        match self.authenticate(credential).await? {
            Principal::SecretKey(environment) => Ok(environment),
            Principal::PublicAccessToken { .. } => Err(EngineError::Unauthenticated(
                "A Public Access Token can only complete its waitpoint token; this route needs a secret key".into(),
            )),
        }
    }
}

impl Inner {
    /// A waitpoint finished and these runs, which waited on it, resumed: queued ones wake the
    /// polls, handed ones go to their worker's mailbox.
    pub(crate) fn finished(&self, waitpoint: Waitpoint, resumed: Resumed) {
        metrics::waitpoint_finished(&waitpoint);
        metrics::runs(metrics::Transition::Resumed, resumed.queued.len() + resumed.handed.len());
        self.workers.resumed(&resumed);
        if !resumed.queued.is_empty() {
            self.runs_ready.notify_waiters();
        }
        if self.observed() {
            self.runs_changed(&waitpoint.environment_id, &resumed.runs());
        }
        for claim in resumed.handed {
            if let waitpoint_types::RunState::Executing { worker } = &claim.run.state {
                let key = (claim.run.environment_id.clone(), worker.clone());
                self.workers.hand(key, claim);
            }
        }
        self.emit(|| Event::WaitpointFinished(waitpoint));
    }

    /// The workers that runs resumed now are handed to (see [`Takers`]).
    pub(crate) fn hand_to(&self) -> Takers {
        self.workers.takers(self.clock.now())
    }

    /// When a worker must have been seen to count as alive.
    pub(crate) fn workers_alive_since(&self) -> Timestamp {
        self.clock.now().saturating_sub(self.config.worker_timeout)
    }

    /// Wakes the timeout loop if `deadline` is earlier than its next wake-up.
    pub(crate) fn deadline_added(&self, deadline: Timestamp) {
        if deadline.as_millis() < self.next_timer_wake.load(Ordering::SeqCst) {
            self.timer_wake.notify_one();
        }
    }

    pub(crate) async fn environment_by_api_key(&self, key: &str) -> Result<Environment> {
        let now = self.clock.now();
        if let Some(environment) = self.environments.get(&self.environments.by_key, key, now) {
            return Ok(environment);
        }
        match self.store.environment_by_api_key(key).await {
            Ok(environment) => {
                self.environments.put(&environment, now);
                Ok(environment)
            }
            Err(StorageError::NotFound) => Err(EngineError::Unauthenticated("Invalid API key".into())),
            Err(error) => Err(error.into()),
        }
    }

    pub(crate) async fn environment_by_id(&self, id: &EnvironmentId) -> Result<Environment> {
        let now = self.clock.now();
        if let Some(environment) = self.environments.get(&self.environments.by_id, id.internal(), now) {
            return Ok(environment);
        }
        match self.store.environment_by_id(id).await {
            Ok(environment) => {
                self.environments.put(&environment, now);
                Ok(environment)
            }
            Err(StorageError::NotFound) => Err(EngineError::NotFound(format!("no environment {id}"))),
            Err(error) => Err(error.into()),
        }
    }
}

/// Environments recently looked up, by secret key and by id.
#[derive(Debug, Default)]
struct EnvironmentCache {
    by_key: RwLock<HashMap<String, (Environment, Timestamp)>>,
    by_id: RwLock<HashMap<String, (Environment, Timestamp)>>,
}

impl EnvironmentCache {
    fn get(
        &self,
        map: &RwLock<HashMap<String, (Environment, Timestamp)>>,
        key: &str,
        now: Timestamp,
    ) -> Option<Environment> {
        let map = map.read().unwrap_or_else(|p| p.into_inner());
        let (environment, fetched_at) = map.get(key)?;
        (now.duration_since(*fetched_at) < ENVIRONMENT_CACHE_TTL && *fetched_at <= now).then(|| environment.clone())
    }

    fn put(&self, environment: &Environment, now: Timestamp) {
        let entry = (environment.clone(), now);
        let mut by_key = self.by_key.write().unwrap_or_else(|p| p.into_inner());
        by_key.retain(|_, (cached, _)| cached.id != environment.id);
        by_key.insert(environment.api_key.expose().to_owned(), entry.clone());
        drop(by_key);
        self.by_id.write().unwrap_or_else(|p| p.into_inner()).insert(environment.id.internal().to_owned(), entry);
    }
}
