//! Outbound webhooks: an environment subscribes a URL to its event log; a loop delivers each
//! subscription's events to it, in order, at least once, signed per Standard Webhooks.
//!
//! How far each subscription got is stored ([`Delivery`]): a delivery is recorded only after
//! the receiver answered 2xx, so a crash or a restart delivers again from there (at least
//! once; receivers dedupe on `webhook-id`, the event's position). A failure is retried with
//! exponential backoff (1 s doubling to 1 h), and a failing subscription never holds up the
//! others (each subscription is delivered by a task of its own). Only `http` and `https` URLs are taken, redirects are not followed, and unless the
//! deployment allows it ([`WebhookPolicy`]), no delivery connects to a loopback, private,
//! link-local or otherwise internal address: hosts are resolved by a resolver that drops
//! those, so a name that resolves to one cannot be used to reach inside.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use waitpoint_types::event::{Event, EventKind};
use waitpoint_types::id::random_alphanumeric;
use waitpoint_types::webhook::{Delivery, Webhook};
use waitpoint_types::{Environment, Secret, Timestamp, WebhookId};

use crate::error::{EngineError, Result};
use crate::event_log::{EventFilter, RECHECK};
use crate::{Engine, Inner};

/// The most subscriptions an environment has.
pub const MAX_WEBHOOKS: usize = 20;
/// How long a receiver has to answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Events read per subscription per round.
const PAGE: usize = 100;
/// The shortest time between two rounds of the delivery loop.
const ROUND_EVERY: Duration = Duration::from_millis(20);
/// The longest wait between two attempts at a failing delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// Where webhooks may deliver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Deliver to loopback, private and link-local addresses too (a deployment whose receivers
    /// are on its own network; tests).
    pub allow_private: bool,
    /// Only to these hosts (exactly, case-insensitive); any host when empty.
    pub allowed_hosts: Vec<String>,
}

/// A new subscription, as asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewWebhook {
    /// Where to deliver.
    pub url: String,
    /// Only these kinds (all when empty).
    pub kinds: Vec<EventKind>,
    /// Only events whose subject has any of these tags (all when empty).
    pub tags: Vec<String>,
}

/// Whether an address is one a delivery may not reach unless the policy allows it.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves hosts for deliveries, dropping the addresses the policy does not allow.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.into_iter().filter(|addr| allow_private || !internal(addr.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves only to addresses webhooks may not reach").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client of deliveries under `policy`.
pub(crate) fn client(policy: &WebhookPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow_private: policy.allow_private }))
        .user_agent(concat!("waitpoint-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Checks a subscription's URL against `policy`: `http` or `https`, a host (allowed, when the
/// policy names hosts), and no internal IP literal unless allowed.
fn checked_url(url: &str, policy: &WebhookPolicy) -> Result<Url> {
    let invalid = |why: String| EngineError::Invalid(format!("url {url:?} {why}"));
    if url.len() > 2_048 {
        return Err(EngineError::Invalid("url is longer than 2,048 characters".into()));
    }
    let parsed = Url::parse(url).map_err(|error| invalid(format!("is not a URL ({error})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("must be http or https".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not carry credentials".into()));
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(domain)) => domain.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) if !policy.allow_private && internal(IpAddr::V4(ip)) => {
            return Err(invalid("is an internal address webhooks may not reach".into()));
        }
        Some(url::Host::Ipv6(ip)) if !policy.allow_private && internal(IpAddr::V6(ip)) => {
            return Err(invalid("is an internal address webhooks may not reach".into()));
        }
        Some(other) => other.to_string(),
        None => return Err(invalid("has no host".into())),
    };
    if !policy.allowed_hosts.is_empty()
        && !policy.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(&host))
    {
        return Err(invalid(format!("is not on a host webhooks may reach here ({})", policy.allowed_hosts.join(", "))));
    }
    Ok(parsed)
}

/// A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
fn new_secret() -> Secret {
    Secret::new(format!("whsec_{}", BASE64.encode(random_alphanumeric(32))))
}

impl Engine {
    /// Subscribes `request.url` to `environment`'s events from now on; the answer holds the
    /// secret deliveries are signed with (shown this once).
    pub async fn create_webhook(&self, environment: &Environment, request: NewWebhook) -> Result<Webhook> {
        checked_url(&request.url, &self.inner.config.webhooks)?;
        crate::validate::filter_values("tags", &request.tags)?;
        let existing = self.inner.store.webhook_list(Some(&environment.id)).await?;
        if existing.len() >= MAX_WEBHOOKS {
            return Err(EngineError::Conflict(format!(
                "The environment has {MAX_WEBHOOKS} webhooks, the most it may: delete one first"
            )));
        }
        let now = self.inner.clock.now();
        let webhook = Webhook {
            id: self.inner.ids.webhook(now),
            environment_id: environment.id.clone(),
            url: request.url,
            secret: new_secret(),
            kinds: request.kinds,
            tags: request.tags,
            created_at: now,
            delivery: Delivery { through: self.inner.store.events_head().await?, ..Delivery::default() },
        };
        self.inner.store.webhook_create(&webhook).await?;
        self.inner.webhooks_changed.notify_one();
        Ok(webhook)
    }

    /// `environment`'s webhooks, oldest first, with how far delivery got.
    pub async fn list_webhooks(&self, environment: &Environment) -> Result<Vec<Webhook>> {
        Ok(self.inner.store.webhook_list(Some(&environment.id)).await?)
    }

    /// Deletes webhook `id` of `environment`; nothing more is delivered to it.
    pub async fn delete_webhook(&self, environment: &Environment, id: &str) -> Result<()> {
        let id = WebhookId::parse(id).map_err(|error| EngineError::Invalid(error.to_string()))?;
        self.inner.store.webhook_delete(&environment.id, &id).await.map_err(|error| match error {
            waitpoint_storage::StorageError::NotFound => EngineError::NotFound("Webhook not found".into()),
            other => other.into(),
        })
    }
}

/// The body of a delivery: Standard Webhooks' `{type, timestamp, data}`, `data` being the event
/// as the event stream shows it.
fn body(event: &Event) -> String {
    serde_json::json!({
        "type": event.event.kind.as_str(),
        "timestamp": event.event.at.to_string(),
        "data": event,
    })
    .to_string()
}

/// The `webhook-signature` of a delivery: `v1,` and the base64 HMAC-SHA256, keyed with the
/// secret's bytes after `whsec_` (base64), of `id.timestamp.body`.
fn signature(secret: &Secret, id: &str, timestamp: i64, body: &str) -> String {
    let key = BASE64.decode(secret.expose().strip_prefix("whsec_").unwrap_or(secret.expose())).unwrap_or_default();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let tag = hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(tag.as_ref()))
}

/// Posts `event` to `webhook`; the receiver's failure, if any, for the record.
async fn deliver(
    client: &reqwest::Client,
    webhook: &Webhook,
    event: &Event,
    now: Timestamp,
) -> std::result::Result<(), String> {
    let id = format!("evt_{}", event.seq);
    let timestamp = now.as_millis() / 1000;
    let body = body(event);
    let sent = client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature(&webhook.secret, &id, timestamp, &body))
        .body(body)
        .send()
        .await
        .map_err(|error| format!("could not deliver: {error}"))?;
    match sent.status() {
        status if status.is_success() => Ok(()),
        status => Err(format!("the receiver answered {status}")),
    }
}

/// How long to wait after the `attempts`-th failure in a row.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(12)).min(MAX_BACKOFF)
}

/// Delivers what is due of one subscription: its pending events, in order, until one fails.
async fn deliver_due(inner: Arc<Inner>, client: reqwest::Client, mut webhook: Webhook) {
    let filter = EventFilter { kinds: webhook.kinds.clone(), tags: webhook.tags.clone() };
    let engine = Engine { inner: inner.clone() };
    loop {
        let page = match engine.read_events_of(&webhook.environment_id, webhook.delivery.through, &filter, PAGE).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, webhook = %webhook.id, "could not read the event log for a webhook");
                return;
            }
        };
        if page.through == webhook.delivery.through {
            return;
        }
        for event in &page.events {
            let now = inner.clock.now();
            match deliver(&client, &webhook, event, now).await {
                Ok(()) => {
                    webhook.delivery = Delivery { through: event.seq, ..Delivery::default() };
                    crate::metrics::webhook_delivered(true);
                }
                Err(error) => {
                    let attempts = webhook.delivery.attempts.saturating_add(1);
                    tracing::warn!(webhook = %webhook.id, seq = event.seq, attempts, %error, "webhook delivery failed");
                    crate::metrics::webhook_delivered(false);
                    webhook.delivery = Delivery {
                        through: webhook.delivery.through,
                        attempts,
                        retry_at: Some(now.saturating_add(backoff(attempts))),
                        last_error: Some(error),
                    };
                    record(&inner, &webhook).await;
                    return;
                }
            }
            record(&inner, &webhook).await;
        }
        webhook.delivery.through = page.through;
        record(&inner, &webhook).await;
    }
}

async fn record(inner: &Inner, webhook: &Webhook) {
    if let Err(error) = inner.store.webhook_delivered(&webhook.id, &webhook.delivery).await {
        tracing::warn!(%error, webhook = %webhook.id, "could not record a webhook's delivery");
    }
}

/// Runs until `shutdown` turns true: every round starts a delivery task for each subscription
/// that is due and has none running, so a slow or failing receiver holds up no other; a round
/// starts when a commit on this node appended events (at most one every [`ROUND_EVERY`]), or
/// after [`RECHECK`]. At shutdown the tasks
/// stop where they are (what they delivered but did not record is delivered again).
pub(crate) async fn run(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let client = client(&inner.config.webhooks);
    let mut appends = inner.writer.appended();
    let mut running: HashMap<WebhookId, JoinHandle<()>> = HashMap::new();
    loop {
        let now = inner.clock.now();
        running.retain(|_, task| !task.is_finished());
        match inner.store.webhook_list(None).await {
            Ok(webhooks) => {
                for webhook in webhooks {
                    let due = webhook.delivery.retry_at.is_none_or(|at| at <= now);
                    if due && !running.contains_key(&webhook.id) {
                        let id = webhook.id.clone();
                        running.insert(id, tokio::spawn(deliver_due(inner.clone(), client.clone(), webhook)));
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not list webhooks"),
        }
        // At most one round per ROUND_EVERY however fast events come: a round lists the
        // subscriptions, and a running delivery task takes what came meanwhile anyway.
        let pause = inner.clock.sleep_until(now.saturating_add(ROUND_EVERY));
        let wake = async {
            tokio::select! {
                _ = appends.changed() => {}
                () = inner.webhooks_changed.notified() => {}
                () = inner.clock.sleep_until(now.saturating_add(RECHECK)) => {}
            }
        };
        if !unless_stopped(&mut shutdown, pause).await || !unless_stopped(&mut shutdown, wake).await {
            running.values().for_each(JoinHandle::abort);
            return;
        }
    }
}

/// Waits for `wake`; false instead when `shutdown` turns true first.
async fn unless_stopped(shutdown: &mut watch::Receiver<bool>, wake: impl Future<Output = ()>) -> bool {
    tokio::select! {
        () = wake => true,
        _ = shutdown.wait_for(|stop| *stop) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = WebhookPolicy::default();
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "ftp://example.com/",
            "https://user:pass@example.com/",
            "not a url",
        ] {
            assert!(checked_url(url, &strict).is_err(), "{url} was taken");
        }
        assert!(checked_url("https://example.com/hooks", &strict).is_ok());
        assert!(checked_url("http://93.184.216.34/hook", &strict).is_ok());
        let open = WebhookPolicy { allow_private: true, ..WebhookPolicy::default() };
        assert!(checked_url("http://127.0.0.1:8080/hook", &open).is_ok());
        let hosts = WebhookPolicy { allowed_hosts: vec!["hooks.example.com".into()], ..WebhookPolicy::default() };
        assert!(checked_url("https://HOOKS.example.com/x", &hosts).is_ok());
        assert!(checked_url("https://example.com/x", &hosts).is_err());
    }

    #[tokio::test]
    async fn names_that_resolve_only_inside_are_refused_by_the_resolver() {
        let resolver = GuardedResolver { allow_private: false };
        let refused = resolver.resolve(Name::from_str("localhost").unwrap()).await;
        assert!(refused.is_err(), "localhost is loopback");
        let allowed = GuardedResolver { allow_private: true }.resolve(Name::from_str("localhost").unwrap()).await;
        assert!(allowed.is_ok());
    }

    #[test]
    fn deliveries_are_signed_as_standard_webhooks_sign() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let signed = signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, r#"{"test": 2432232314}"#);
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(new_secret().expose().starts_with("whsec_"));
        assert_eq!(
            (backoff(1), backoff(3), backoff(40)),
            (Duration::from_secs(1), Duration::from_secs(4), MAX_BACKOFF)
        );
    }
}
