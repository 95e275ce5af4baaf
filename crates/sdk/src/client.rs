//! The HTTP client.

use std::time::Duration;

use futures_util::Stream;
use reqwest::{Method, RequestBuilder, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use waitpoint_types::api::{
    CreateTokenRequest, CreateTokenResponse, ErrorBody, ExtendTokenRequest, Page, ProlongResponse, RejectTokenRequest,
    TimeText, TokenDetail, TokenItem,
};
use waitpoint_types::time::parse_duration;
use waitpoint_types::{Timestamp, WaitpointStatus};

use crate::{AsTokenId, Error, Result, Token};

/// The query parameters of a page that the token and run lists share.
pub(crate) struct ListQuery<'a> {
    pub(crate) page_size: Option<u32>,
    pub(crate) after: Option<&'a str>,
    pub(crate) statuses: Vec<&'a str>,
    pub(crate) idempotency_key: Option<&'a str>,
    pub(crate) tags: &'a [String],
    pub(crate) period: Option<&'a str>,
    pub(crate) from: Option<Timestamp>,
    pub(crate) to: Option<Timestamp>,
}

impl ListQuery<'_> {
    /// Adds the parameters that are set to `url`'s query.
    pub(crate) fn append_to(&self, url: &mut Url) {
        let mut query = url.query_pairs_mut();
        if let Some(size) = self.page_size {
            query.append_pair("page[size]", &size.to_string());
        }
        if let Some(after) = self.after {
            query.append_pair("page[after]", after);
        }
        if !self.statuses.is_empty() {
            query.append_pair("filter[status]", &self.statuses.join(","));
        }
        if let Some(key) = self.idempotency_key {
            query.append_pair("filter[idempotencyKey]", key);
        }
        if !self.tags.is_empty() {
            query.append_pair("filter[tags]", &self.tags.join(","));
        }
        if let Some(period) = self.period {
            query.append_pair("filter[createdAt][period]", period);
        }
        if let Some(from) = self.from {
            query.append_pair("filter[createdAt][from]", &from.as_millis().to_string());
        }
        if let Some(to) = self.to {
            query.append_pair("filter[createdAt][to]", &to.as_millis().to_string());
        }
    }
}

const TOKENS: &str = "api/v1/waitpoints/tokens";

/// Filters of a token list; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Any of these statuses.
    pub statuses: Vec<WaitpointStatus>,
    /// Created with this idempotency key.
    pub idempotency_key: Option<String>,
    /// Any of these tags.
    pub tags: Vec<String>,
    /// Created within this period before now (`"1h"`, `"7d"`).
    pub period: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created at or before.
    pub to: Option<Timestamp>,
    /// Tokens per page (1 to 100).
    pub page_size: Option<u32>,
}

/// A client of the token API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    base: Url,
    credential: String,
}

impl Client {
    /// A client of the API at `api_url` (such as `http://127.0.0.1:3030`) using `credential`:
    /// a secret key, or a token's public access token (which can only complete that token).
    pub fn new(api_url: &str, credential: &str) -> Result<Self> {
        let mut base = Url::parse(api_url).map_err(|e| Error::Config(format!("invalid API URL {api_url:?}: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        if credential.trim().is_empty() {
            return Err(Error::Config(
                "no secret key given: pass one, or use Client::from_env() to read WAITPOINT_SECRET_KEY".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(Error::Http)?;
        Ok(Self { http, base, credential: credential.trim().to_owned() })
    }

    /// A client configured as the `waitpoint` CLI is: the URL from `WAITPOINT_API_URL` (or
    /// `TRIGGER_API_URL`; default `http://127.0.0.1:3030`), the key from `WAITPOINT_SECRET_KEY`
    /// (or `TRIGGER_SECRET_KEY`). See [`env`](mod@crate::env).
    pub fn from_env() -> Result<Self> {
        let key = crate::env::secret_key().ok_or_else(|| {
            Error::Config(
                "no secret key: set WAITPOINT_SECRET_KEY to the key `waitpoint serve` printed (`waitpoint env list` \
                 prints it again)"
                    .into(),
            )
        })?;
        Self::new(&crate::env::api_url(), &key)
    }

    /// The API's URL, as given.
    pub fn api_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Creates a token (or, with an active idempotency key, returns the existing one). Its
    /// durations are checked first: one that is not a duration, a date or `"none"` is an
    /// [`Error::Config`] naming the field, and nothing is sent.
    pub async fn create_token(&self, request: CreateTokenRequest) -> Result<CreateTokenResponse> {
        check_token_request(&request)?;
        self.send(self.request(Method::POST, TOKENS)?.json(&request)).await
    }

    /// Completes `token` with `output` (any serializable value). Completing a token that
    /// already finished succeeds and changes nothing.
    pub async fn complete_token<T: Serialize + ?Sized>(&self, token: impl AsTokenId, output: &T) -> Result<()> {
        let body = serde_json::json!({ "data": output });
        let path = format!("{TOKENS}/{}/complete", segment(token.token_id())?);
        let _: serde_json::Value = self.send(self.request(Method::POST, &path)?.json(&body)).await?;
        Ok(())
    }

    /// Completes `token` with no output (`{}`), as the official SDK does for `undefined`.
    pub async fn complete_token_without_output(&self, token: impl AsTokenId) -> Result<()> {
        let path = format!("{TOKENS}/{}/complete", segment(token.token_id())?);
        let request = self.request(Method::POST, &path)?.json(&serde_json::json!({}));
        let _: serde_json::Value = self.send(request).await?;
        Ok(())
    }

    /// Rejects `token` with an error: a run waiting on it gets that error. Rejecting a token
    /// that already finished succeeds and changes nothing.
    pub async fn reject_token(&self, token: impl AsTokenId, rejection: &RejectTokenRequest) -> Result<()> {
        let path = format!("{TOKENS}/{}/reject", segment(token.token_id())?);
        let _: serde_json::Value = self.send(self.request(Method::POST, &path)?.json(rejection)).await?;
        Ok(())
    }

    /// Sends `token` a heartbeat: for a token created with a heartbeat timeout, it stays alive
    /// for another interval. The answer says until when. A token that finished, or whose time
    /// came before the heartbeat arrived, is an error (409).
    pub async fn heartbeat_token(&self, token: impl AsTokenId) -> Result<ProlongResponse> {
        let path = format!("{TOKENS}/{}/heartbeat", segment(token.token_id())?);
        self.send(self.request(Method::POST, &path)?.json(&serde_json::json!({}))).await
    }

    /// Moves `token`'s timeout later: to a duration from now (`"1h"`) or a date. The answer
    /// says until when. An earlier time is an error (400); only a secret key may extend.
    pub async fn extend_token(&self, token: impl AsTokenId, timeout: impl Into<TimeText>) -> Result<ProlongResponse> {
        let path = format!("{TOKENS}/{}/extend", segment(token.token_id())?);
        let body = ExtendTokenRequest { timeout: timeout.into().into_string() };
        self.send(self.request(Method::POST, &path)?.json(&body)).await
    }

    /// The token, with its output or timeout error.
    pub async fn retrieve_token(&self, token: impl AsTokenId) -> Result<Token> {
        let path = format!("{TOKENS}/{}", segment(token.token_id())?);
        let detail: TokenDetail = self.send(self.request(Method::GET, &path)?).await?;
        Ok(Token { detail })
    }

    /// One page of tokens: the newest when `after` is `None`, else those older than the cursor.
    pub(crate) async fn list_tokens_page(&self, filter: &ListFilter, after: Option<&str>) -> Result<Page<TokenItem>> {
        let mut url = self.url(TOKENS)?;
        let query = ListQuery {
            page_size: filter.page_size,
            after,
            statuses: filter.statuses.iter().map(|s| s.as_str()).collect(),
            idempotency_key: filter.idempotency_key.as_deref(),
            tags: &filter.tags,
            period: filter.period.as_deref(),
            from: filter.from,
            to: filter.to,
        };
        query.append_to(&mut url);
        self.send(self.authorized(self.http.get(url))).await
    }

    /// Every token matching `filter`, newest first, fetching pages as the stream is read.
    pub fn list_tokens(&self, filter: ListFilter) -> impl Stream<Item = Result<TokenItem>> + '_ {
        paginate(move |after| {
            let filter = filter.clone();
            async move { self.list_tokens_page(&filter, after.as_deref()).await }
        })
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Config(format!("invalid path {path:?}: {e}")))
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        Ok(self.authorized(self.http.request(method, self.url(path)?)))
    }

    pub(crate) fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(&self.credential)
    }

    /// Sends `request` and decodes its answer. An idempotent request (`GET`, `HEAD`, `PUT`,
    /// `DELETE`) whose connection failed before an answer came is sent once more: a pooled
    /// connection to a server that has since restarted fails that way, and nothing was done.
    pub(crate) async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let request = request.build()?;
        let idempotent = matches!(*request.method(), Method::GET | Method::HEAD | Method::PUT | Method::DELETE);
        let again = if idempotent { request.try_clone() } else { None };
        let response = match (self.http.execute(request).await, again) {
            (Err(error), Some(again)) if !error.is_timeout() && !error.is_status() => {
                tracing::debug!(%error, "the connection failed before an answer; sending once more");
                self.http.execute(again).await?
            }
            (sent, _) => sent?,
        };
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(format!("{e} in {}", String::from_utf8_lossy(&bytes))))
    }
}

/// Checks the durations of a token request as the server would, so a mistake is reported
/// before anything is sent: `timeout` is a duration, an ISO 8601 date or `"none"`;
/// `idempotencyKeyTTL` a duration or `"none"`.
/// The error an answer of `status` (not a success) with `body` stands for: the server's
/// `{"error", "code"?}`, or the body as text when it is not that.
pub(crate) fn api_error(status: u16, body: &[u8]) -> Error {
    let (message, code) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => (body.error, body.code),
        Err(_) => (String::from_utf8_lossy(body).into_owned(), None),
    };
    Error::Api { status, message, code }
}

pub(crate) fn check_token_request(request: &CreateTokenRequest) -> Result<()> {
    if let Some(timeout) = request.timeout.as_deref()
        && timeout != "none"
        && Timestamp::parse_iso8601(timeout).is_none()
        && let Err(error) = parse_duration(timeout)
    {
        return Err(Error::Config(format!("timeout {error}, an ISO 8601 date, or \"none\" for no timeout")));
    }
    if let Some(ttl) = request.idempotency_key_ttl.as_deref()
        && ttl != "none"
        && let Err(error) = parse_duration(ttl)
    {
        return Err(Error::Config(format!("idempotencyKeyTTL {error}, or \"none\" for a key that never expires")));
    }
    if let Some(every) = request.heartbeat_timeout.as_deref()
        && let Err(error) = parse_duration(every)
    {
        return Err(Error::Config(format!("heartbeatTimeout {error}")));
    }
    Ok(())
}

/// An id (of a token, a run, a worker) as a path segment: ids are `[0-9a-z_-]`, anything else
/// is refused here rather than sent somewhere unexpected.
pub(crate) fn segment(id: &str) -> Result<&str> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        Ok(id)
    } else {
        Err(Error::Config(format!("invalid id {id:?}")))
    }
}

/// The items of every page `fetch` returns, following `pagination.next` until it is absent.
pub(crate) fn paginate<T, F, Fut>(fetch: F) -> impl Stream<Item = Result<T>>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    enum Next {
        Page(Option<String>),
        Done,
    }
    let pages = futures_util::stream::unfold((Next::Page(None), fetch), |(next, fetch)| async move {
        let Next::Page(after) = next else { return None };
        match fetch(after).await {
            Ok(page) => {
                let next = match page.pagination.next {
                    Some(cursor) if !page.data.is_empty() => Next::Page(Some(cursor)),
                    _ => Next::Done,
                };
                Some((Ok(page.data), (next, fetch)))
            }
            Err(error) => Some((Err(error), (Next::Done, fetch))),
        }
    });
    futures_util::StreamExt::flat_map(pages, |page| {
        let items: Vec<Result<T>> = match page {
            Ok(items) => items.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        };
        futures_util::stream::iter(items)
    })
}
