//! The dashboard and the approval pages driven in process over a real SQLite database and a
//! manual clock: sessions and CSRF, every page without a session, escaping, security headers,
//! approval pages scoped to their token with the first answer winning, bulk actions, forced
//! timeouts, skipped waits and the event stream.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig};
use waitpoint_sqlite::SqliteStore;
use waitpoint_types::api::TriggerOptions;
use waitpoint_types::api::worker::{PollRequest, TaskSlots, WaitFor};
use waitpoint_types::{Environment, IdGenerator, Timestamp};

const START: i64 = 1_764_000_000_000;
const XSS: &str = "<script>alert(\"x\")</script>'\"";

struct Site {
    _dir: TempDir,
    clock: ManualClock,
    engine: Engine,
    router: Router,
    dev: Environment,
    prod: Environment,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).map_or("", |v| v.to_str().unwrap())
    }

    /// The value of the hidden field `name` (the first one).
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start =
            self.text.find(&marker).unwrap_or_else(|| panic!("no field {name} in {}", self.text)) + marker.len();
        self.text[start..].split('"').next().unwrap().to_owned()
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

impl Site {
    async fn new() -> Self {
        Self::with_url("http://wp.test").await
    }

    async fn with_url(public_url: &str) -> Self {
        let dir = TempDir::new().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(START));
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        let dev = create_environment(&store, &clock, "dev").await.unwrap();
        let prod = create_environment(&store, &clock, "prod").await.unwrap();
        let config = EngineConfig { public_url: public_url.into(), ..EngineConfig::default() };
        let engine = Engine::start(Arc::new(store), Arc::new(clock.clone()), config);
        Self { _dir: dir, clock, router: waitpoint_server::app(engine.clone()), engine, dev, prod }
    }

    async fn send(&self, request: Request<Body>) -> Page {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut request = Request::builder().uri(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Page {
        self.post_with(path, cookie, form, &[]).await
    }

    async fn post_with(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Page {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form {
            body.append_pair(name, value);
        }
        let body = body.finish();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::CONTENT_LENGTH, body.len());
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// Signs in to `environment` with its key; the session cookie (`name=value`) and the
    /// session's CSRF token.
    async fn sign_in(&self, environment: &Environment) -> (String, String) {
        let form = self.get("/sign-in", None).await;
        let pre = form.set_cookie("waitpoint_sign_in").unwrap();
        let pre = pre.split(';').next().unwrap().to_owned();
        let csrf = form.field("csrf");
        let signed = self
            .post("/sign-in", Some(&pre), &[("csrf", &csrf), ("next", "/"), ("key", environment.api_key.expose())])
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
        let cookie = signed.set_cookie("waitpoint_session").unwrap().split(';').next().unwrap().to_owned();
        let overview = self.get("/", Some(&cookie)).await;
        assert_eq!(overview.status, StatusCode::OK);
        (cookie, overview.field("csrf"))
    }

    async fn api(&self, method: Method, path: &str, environment: &Environment, body: Value) -> Value {
        let text = if body.is_null() { String::new() } else { body.to_string() };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", environment.api_key.expose()))
            .header(header::CONTENT_LENGTH, text.len())
            .body(Body::from(text))
            .unwrap();
        let page = self.send(request).await;
        assert!(page.status.is_success(), "{} {}", page.status, page.text);
        serde_json::from_str(&page.text).unwrap()
    }

    async fn create(&self, environment: &Environment, body: Value) -> Value {
        self.api(Method::POST, "/api/v1/waitpoints/tokens", environment, body).await
    }

    async fn token(&self, id: &str) -> Value {
        self.api(Method::GET, &format!("/api/v1/waitpoints/tokens/{id}"), &self.dev, Value::Null).await
    }
}

fn id_of(created: &Value) -> String {
    created["id"].as_str().unwrap().to_owned()
}

fn path_of(url: &str) -> String {
    url.strip_prefix("http://wp.test").unwrap().to_owned()
}

#[tokio::test]
async fn no_page_shows_anything_without_a_session() {
    let site = Site::new().await;
    let token = id_of(&site.create(&site.dev, json!({ "tags": ["secret-tag"] })).await);
    let run = site.engine.trigger_run(&site.dev, "t", "{}".into(), &TriggerOptions::default()).await.unwrap();
    let run = run.run.id.public();
    for path in [
        "/".to_owned(),
        "/tokens".to_owned(),
        format!("/tokens/{token}"),
        "/tokens?tags=secret-tag".to_owned(),
        "/tokens/bulk?action=complete".to_owned(),
        "/tokens/tags?prefix=s".to_owned(),
        "/runs".to_owned(),
        format!("/runs/{run}"),
    ] {
        let page = site.get(&path, None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert!(page.location().starts_with("/sign-in?next="), "{path}: {}", page.location());
        assert!(!page.text.contains(&token) && !page.text.contains("secret-tag"), "{path} shows data");
        let forged = site.get(&path, Some("waitpoint_session=forged.1.2.3.4")).await;
        assert_eq!(forged.status, StatusCode::SEE_OTHER, "{path} with a forged session");
    }
    for path in [
        format!("/tokens/{token}/complete"),
        format!("/tokens/{token}/timeout"),
        "/tokens/bulk".to_owned(),
        format!("/runs/{run}/cancel"),
        format!("/runs/{run}/skip"),
        "/sign-out".to_owned(),
    ] {
        let page = site.post(&path, None, &[("action", "timeout-selected"), ("id", &token)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/sign-in?next=%2F");
    }
    assert_eq!(site.token(&token).await["status"], "WAITING");
    assert_eq!(site.get("/events", None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_are_strict_http_only_cookies_and_every_form_needs_its_csrf_token() {
    let site = Site::new().await;
    let form = site.get("/sign-in?next=/tokens", None).await;
    assert_eq!(form.status, StatusCode::OK);
    let pre = form.set_cookie("waitpoint_sign_in").unwrap();
    assert!(pre.contains("HttpOnly") && pre.contains("SameSite=Strict") && !pre.contains("Secure"), "{pre}");
    let pre = pre.split(';').next().unwrap().to_owned();
    let key = site.dev.api_key.expose();

    let forged = site.post("/sign-in", Some(&pre), &[("csrf", "wrong"), ("key", key)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "the sign-in form's own token");
    assert!(forged.set_cookie("waitpoint_session").is_none());
    let csrf = form.field("csrf");
    let wrong = site.post("/sign-in", Some(&pre), &[("csrf", &csrf), ("key", "tr_dev_nope")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.text.contains("tr_dev_nope"), "a key typed is not shown back");
    let signed = site.post("/sign-in", Some(&pre), &[("csrf", &csrf), ("next", "/tokens"), ("key", key)]).await;
    assert_eq!((signed.status, signed.location()), (StatusCode::SEE_OTHER, "/tokens"));
    let cookie = signed.set_cookie("waitpoint_session").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"));
    assert!(!cookie.contains(key), "the key is not in the cookie");
    let offsite = site.post("/sign-in", Some(&pre), &[("csrf", &csrf), ("next", "//evil.test"), ("key", key)]).await;
    assert_eq!(offsite.location(), "/", "sign-in never sends a browser to another site");

    let (session, csrf) = site.sign_in(&site.dev).await;
    let token = id_of(&site.create(&site.dev, json!({})).await);
    let timeout = format!("/tokens/{token}/timeout");
    for (token_field, extra) in [
        (None, vec![]),
        (Some("wrong"), vec![]),
        (Some(csrf.as_str()), vec![("sec-fetch-site", "cross-site")]),
        (Some(csrf.as_str()), vec![("origin", "http://evil.test"), ("host", "wp.test")]),
    ] {
        let form: Vec<(&str, &str)> = token_field.map(|t| ("csrf", t)).into_iter().collect();
        let refused = site.post_with(&timeout, Some(&session), &form, &extra).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{token_field:?} {extra:?}");
    }
    assert_eq!(site.token(&token).await["status"], "WAITING");
    let (other_session, other_csrf) = site.sign_in(&site.dev).await;
    let crossed = site.post(&timeout, Some(&session), &[("csrf", &other_csrf)]).await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN, "another session's token");
    assert_ne!(other_session, session);
    let same_origin = [("origin", "http://wp.test"), ("host", "wp.test"), ("sec-fetch-site", "same-origin")];
    let done = site.post_with(&timeout, Some(&session), &[("csrf", &csrf)], &same_origin).await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, format!("/tokens/{token}").as_str()));
    let timed_out = site.token(&token).await;
    assert_eq!(
        (timed_out["status"].as_str(), timed_out["completedVia"].as_str()),
        (Some("TIMED_OUT"), Some("DASHBOARD"))
    );

    let out = site.post("/sign-out", Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.set_cookie("waitpoint_session").unwrap().contains("Max-Age=0"));

    let https = Site::with_url("https://wp.example").await;
    let form = https.get("/sign-in", None).await;
    assert!(form.set_cookie("waitpoint_sign_in").unwrap().contains("; Secure"));
}

#[tokio::test]
async fn sign_in_is_rate_limited() {
    let site = Site::new().await;
    let form = site.get("/sign-in", None).await;
    let pre = form.set_cookie("waitpoint_sign_in").unwrap().split(';').next().unwrap().to_owned();
    let csrf = form.field("csrf");
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(site.post("/sign-in", Some(&pre), &[("csrf", &csrf), ("key", "tr_dev_guess")]).await.status);
    }
    assert_eq!(statuses[..10], [StatusCode::UNAUTHORIZED; 10]);
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
    let right = site.post("/sign-in", Some(&pre), &[("csrf", &csrf), ("key", site.dev.api_key.expose())]).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS, "even the right key waits");
    assert_eq!(site.get("/sign-in/link/whatever", None).await.status, StatusCode::TOO_MANY_REQUESTS);
    site.clock.advance(Duration::from_secs(60));
    let later = site.post("/sign-in", Some(&pre), &[("csrf", &csrf), ("key", site.dev.api_key.expose())]).await;
    assert_eq!(later.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_session_sees_its_environment_only() {
    let site = Site::new().await;
    let (session, csrf) = site.sign_in(&site.dev).await;
    let theirs = id_of(&site.create(&site.prod, json!({ "tags": ["prod-only"] })).await);
    let list = site.get("/tokens", Some(&session)).await;
    assert!(!list.text.contains(&theirs) && !list.text.contains("prod-only"));
    assert_eq!(site.get(&format!("/tokens/{theirs}"), Some(&session)).await.status, StatusCode::NOT_FOUND);
    let refused = site.post(&format!("/tokens/{theirs}/timeout"), Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let form = [("csrf", csrf.as_str()), ("action", "timeout-selected"), ("id", theirs.as_str())];
    let bulk = site.post("/tokens/bulk", Some(&session), &form).await;
    assert!(bulk.text.contains("not found"));
    let state = site.api(Method::GET, &format!("/api/v1/waitpoints/tokens/{theirs}"), &site.prod, Value::Null).await;
    assert_eq!(state["status"], "WAITING");
}

#[tokio::test]
async fn user_text_is_escaped_on_every_page() {
    let site = Site::new().await;
    let (session, csrf) = site.sign_in(&site.dev).await;
    let created = site
        .create(
            &site.dev,
            json!({
                "tags": [XSS, "a\"b"],
                "idempotencyKey": XSS,
                "approval": { "title": XSS, "description": XSS, "fields": [{"name": "f", "label": XSS, "type": "choice", "options": [XSS]}] }
            }),
        )
        .await;
    let id = id_of(&created);
    let detail = format!("/tokens/{id}");
    let output = json!({ "x": XSS }).to_string();
    let completed =
        site.post(&format!("{detail}/complete"), Some(&session), &[("csrf", &csrf), ("output", &output)]).await;
    assert_eq!(completed.status, StatusCode::SEE_OTHER);
    let options = TriggerOptions { tags: Some(vec![XSS.into()]), ..Default::default() };
    let run = site.engine.trigger_run(&site.dev, "t", json!({ "p": XSS }).to_string(), &options).await;
    let run = run.unwrap().run.id.public();
    let approval = path_of(created["approvalUrl"].as_str().unwrap());
    let fresh = id_of(&site.create(&site.dev, json!({ "approval": { "title": XSS, "description": XSS } })).await);
    let fresh_url = site.engine.approval_url(&site.dev, &waitpoint_types::WaitpointId::parse(&fresh).unwrap());
    let bad_json =
        site.post(&format!("/tokens/{fresh}/complete"), Some(&session), &[("csrf", &csrf), ("output", XSS)]).await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST, "not JSON: shown again with the problem");
    for (path, page) in [
        ("/tokens", site.get("/tokens", Some(&session)).await),
        ("detail", site.get(&detail, Some(&session)).await),
        ("/runs", site.get("/runs", Some(&session)).await),
        ("run", site.get(&format!("/runs/{run}"), Some(&session)).await),
        ("/", site.get("/", Some(&session)).await),
        ("approval", site.get(&approval, None).await),
        ("fresh approval", site.get(&path_of(&fresh_url), None).await),
        ("bad json", bad_json),
    ] {
        assert!(!page.text.contains("<script>alert"), "{path} lets a script through: {}", page.text);
        assert!(!page.text.contains("a\"b\""), "{path} lets a quote end an attribute");
    }
    let page = site.get(&detail, Some(&session)).await;
    assert!(page.text.contains("&lt;script&gt;alert"), "shown, escaped");
    assert!(site.get(&path_of(&fresh_url), None).await.text.contains("&lt;script&gt;alert"));
}

#[tokio::test]
async fn pages_carry_a_strict_content_security_policy_and_refuse_framing() {
    let site = Site::new().await;
    let (session, _) = site.sign_in(&site.dev).await;
    let approval = path_of(site.create(&site.dev, json!({})).await["approvalUrl"].as_str().unwrap());
    for page in [site.get("/", Some(&session)).await, site.get("/sign-in", None).await, site.get(&approval, None).await]
    {
        let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("style-src 'self'") && !csp.contains("unsafe-inline")
        );
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
        assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
        assert!(!page.text.contains("<script>") && !page.text.contains(" style="), "no inline script or style");
        assert!(!page.text.contains(site.dev.api_key.expose()));
    }
    let overview = site.get("/", Some(&session)).await.text;
    let start = overview.find("/assets/").unwrap();
    let asset = overview[start..].split('"').next().unwrap().to_owned();
    let script = site.get(&asset, None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.headers[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    assert!(script.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/"));
}

#[tokio::test]
async fn an_approval_page_opens_only_with_its_own_signature_and_the_first_answer_wins() {
    let site = Site::new().await;
    let created = site
        .create(
            &site.dev,
            json!({ "approval": { "title": "Publish the Q3 budget?", "fields": [
                {"name": "amount", "type": "number", "required": true, "min": 1},
                {"name": "notify", "type": "boolean"}
            ] } }),
        )
        .await;
    let id = id_of(&created);
    let url = path_of(created["approvalUrl"].as_str().unwrap());
    let signature = url.rsplit('/').next().unwrap().to_owned();
    let other = id_of(&site.create(&site.dev, json!({})).await);
    let hash = created["url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    for wrong in [format!("/approve/{other}/{signature}"), format!("/approve/{id}/{hash}"), format!("/approve/{id}/00")]
    {
        let page = site.get(&wrong, None).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{wrong}");
        assert!(!page.text.contains("Q3 budget"), "nothing of the token shows");
        let answer = site.post(&wrong, None, &[("decision", "approve"), ("amount", "5")]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }
    let page = site.get(&url, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Publish the Q3 budget?") && page.text.contains("method=\"post\""));
    assert!(!page.text.contains(&site.dev.name) || !page.text.contains("Sign out"), "no dashboard on it");

    let missing = site.post(&url, None, &[("decision", "approve")]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.text.contains("amount is required"), "{}", missing.text);
    let approved = site.post(&url, None, &[("decision", "approve"), ("amount", "5"), ("comment", "go")]).await;
    assert_eq!((approved.status, approved.location()), (StatusCode::SEE_OTHER, url.as_str()));
    let late = site.post(&url, None, &[("decision", "reject"), ("comment", "too late")]).await;
    assert_eq!(late.status, StatusCode::SEE_OTHER);
    let outcome = site.get(&url, None).await;
    assert!(outcome.text.contains("Approved") && !outcome.text.contains("too late") && !outcome.text.contains("<form"));

    let token = site.token(&id).await;
    assert_eq!(token["completedVia"], "APPROVAL_PAGE");
    let output: Value = serde_json::from_str(token["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["json"], json!({ "status": "approved", "comment": "go", "amount": 5, "notify": false }));
    assert_eq!(site.token(&other).await["status"], "WAITING", "one page, one token");
}

#[tokio::test]
async fn a_token_is_completed_from_its_page_with_json_checked_first() {
    let site = Site::new().await;
    let (session, csrf) = site.sign_in(&site.dev).await;
    let id = id_of(&site.create(&site.dev, json!({})).await);
    let path = format!("/tokens/{id}/complete");
    for (bad, hint) in [("{\"a\": ", "not JSON"), ("{\"a\":1,\"a\":2}", "not JSON")] {
        let page = site.post(&path, Some(&session), &[("csrf", &csrf), ("output", bad)]).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.text.contains(hint), "{}", page.text);
    }
    assert_eq!(site.token(&id).await["status"], "WAITING");
    let done = site.post(&path, Some(&session), &[("csrf", &csrf), ("output", "{\"status\": \"approved\"}")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let token = site.token(&id).await;
    assert_eq!(token["completedVia"], "DASHBOARD");
    assert_eq!(token["output"], "{\"json\":{\"status\":\"approved\"}}");
    let page = site.get(&format!("/tokens/{id}"), Some(&session)).await;
    assert!(page.text.contains("completed from the dashboard") && !page.text.contains("Time out now"));
}

#[tokio::test]
async fn a_bulk_action_by_filter_leaves_tokens_created_after_the_count_alone() {
    let site = Site::new().await;
    let (session, csrf) = site.sign_in(&site.dev).await;
    let mut shown = Vec::new();
    for _ in 0..3 {
        shown.push(id_of(&site.create(&site.dev, json!({ "tags": ["batch"] })).await));
    }
    let confirm = site.get("/tokens/bulk?tags=batch&action=complete", Some(&session)).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.text.contains("<strong id=\"count\">3</strong>"), "{}", confirm.text);
    let through = confirm.field("through");
    assert_eq!(through, shown[2]);
    let mut later = Vec::new();
    for _ in 0..2 {
        later.push(id_of(&site.create(&site.dev, json!({ "tags": ["batch"] })).await));
    }
    let report = site
        .post(
            "/tokens/bulk",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("tags", "batch"),
                ("through", &through),
                ("action", "complete"),
                ("output", "{\"ok\":1}"),
            ],
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert!(report.text.contains("<strong>3</strong> done"), "{}", report.text);
    for id in &shown {
        assert_eq!(site.token(id).await["status"], "COMPLETED");
    }
    for id in &later {
        assert_eq!(site.token(id).await["status"], "WAITING", "created after the count");
    }
    let selected = site
        .post("/tokens/bulk", Some(&session), &[("csrf", &csrf), ("action", "timeout-selected"), ("id", &later[0])])
        .await;
    assert!(selected.text.contains("<strong>1</strong> done"));
    assert_eq!(site.token(&later[0]).await["completedVia"], "DASHBOARD");
    assert_eq!(site.token(&later[1]).await["status"], "WAITING");
}

#[tokio::test]
async fn a_datetime_wait_is_skipped_from_the_run_page_and_the_run_resumes() {
    let site = Site::new().await;
    let (session, csrf) = site.sign_in(&site.dev).await;
    let run = site.engine.trigger_run(&site.dev, "sleepy", "{}".into(), &TriggerOptions::default()).await.unwrap();
    let id = run.run.id.public();
    let worker = IdGenerator::new().worker(Timestamp::from_millis(START)).public();
    let poll = PollRequest {
        tasks: vec![TaskSlots { id: "sleepy".into(), slots: 1 }],
        wait_ms: 0,
        holding: Vec::new(),
        leaving: false,
        session: None,
    };
    let held = site.engine.poll_runs(&site.dev, &worker, &poll).await.unwrap().remove(0).run;
    let until = Timestamp::from_millis(START + 86_400_000);
    let wait = WaitFor::Datetime { until, name: "for 1d".into() };
    assert!(site.engine.wait(&site.dev, &id, held.epoch, 0, &wait).await.unwrap().suspended);
    let page = site.get(&format!("/runs/{id}"), Some(&session)).await;
    assert!(page.text.contains("Skip the wait") && page.text.contains("waited"));
    let skipped = site.post(&format!("/runs/{id}/skip"), Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(skipped.status, StatusCode::SEE_OTHER, "{}", skipped.text);
    let run = site.api(Method::GET, &format!("/api/v1/runs/{id}"), &site.dev, Value::Null).await;
    assert_ne!(run["status"], "WAITING");
    let journal = site.engine.run_journal(&site.dev, &id).await.unwrap();
    assert_eq!(journal[0].result.as_deref(), Some(r#"{"ok":true,"output":null}"#));
    let canceled = site.post(&format!("/runs/{id}/cancel"), Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(canceled.status, StatusCode::SEE_OTHER);
    let run = site.api(Method::GET, &format!("/api/v1/runs/{id}"), &site.dev, Value::Null).await;
    assert_eq!(run["status"], "CANCELED");
}

#[tokio::test]
async fn the_event_stream_tells_the_session_what_changes_in_its_environment() {
    let site = Site::new().await;
    let (session, _) = site.sign_in(&site.dev).await;
    let request = Request::builder().uri("/events").header(header::COOKIE, &session).body(Body::empty()).unwrap();
    let response = site.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = response.into_body();
    site.create(&site.prod, json!({ "tags": ["theirs"] })).await;
    let mine = id_of(&site.create(&site.dev, json!({})).await);
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let text = String::from_utf8_lossy(&frame).into_owned();
    assert!(text.contains("event: token") && text.contains(&mine), "{text}");
    assert!(text.contains("\"status\":\"WAITING\""), "{text}");
    site.engine.release_polls();
    assert!(body.frame().await.is_none(), "the stream ends when the server stops");
}

#[tokio::test]
async fn an_approval_page_and_the_dashboard_refuse_an_answer_the_output_schema_does_not_take() {
    let site = Site::new().await;
    let schema = json!({ "properties": { "status": { "const": "approved" }, "comment": { "minLength": 3 } } });
    let created = site.create(&site.dev, json!({ "outputSchema": schema })).await;
    let id = id_of(&created);
    let url = path_of(created["approvalUrl"].as_str().unwrap());
    let short = site.post(&url, None, &[("decision", "approve"), ("comment", "ok")]).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.text.contains("/comment"), "the page says where: {}", short.text);
    assert!(short.text.contains("method=\"post\""), "and asks again");
    let rejected = site.post(&url, None, &[("decision", "reject"), ("comment", "not now")]).await;
    assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY, "only approvals fit this schema");
    assert_eq!(site.token(&id).await["status"], "WAITING");
    let approved = site.post(&url, None, &[("decision", "approve"), ("comment", "fine by me")]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    assert_eq!(site.token(&id).await["status"], "COMPLETED");
}
