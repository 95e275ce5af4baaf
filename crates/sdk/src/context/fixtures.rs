//! The shared journal fixtures (`tests/journals/*.json`, format in their README), which every
//! SDK replays so that none drifts from the others in what an operation records or how a
//! replay reads it back. Each fixture is a recorded journal and the calls a run makes; the
//! calls are made through this SDK's context with nothing live: a server that refuses every
//! request counts them, and must count none.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waitpoint_types::Timestamp;
use waitpoint_types::api::CreateTokenRequest;
use waitpoint_types::api::worker::JournalEntryBody;

use super::{Context, Cursor, MemberState, RunShared, Wait, WaitResult, WaitSetResult};
use crate::parking::Parking;
use crate::{Client, Error, ListFilter};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fixture {
    journal: Vec<JournalEntryBody>,
    calls: Vec<Value>,
    outcome: String,
    #[serde(default)]
    diverges_at: Option<usize>,
    #[serde(default)]
    mentions: Vec<String>,
}

/// A server that answers every request `418` and counts them.
async fn refusing_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head).await;
            let answer = "HTTP/1.1 418 I'm a teapot\r\ncontent-type: application/json\r\ncontent-length: 31\r\n\
                          connection: close\r\n\r\n{\"error\":\"nothing is live here\"}";
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (url, requests)
}

fn context(client: Client, journal: Vec<JournalEntryBody>) -> Context {
    let run = RunShared {
        channel: crate::channel::Channel::new(client.clone(), Arc::new(crate::SystemClock)),
        client,
        clock: Arc::new(crate::SystemClock),
        run_id: "run_cfixture".into(),
        task_id: "fixture".into(),
        attempt: 1,
        cursor: tokio::sync::Mutex::new(Cursor { epoch: 1, next_seq: 0, journal }),
        poison: std::sync::Mutex::new(None),
        permits: std::sync::Mutex::new(None),
        parking: Parking::new(1),
    };
    Context { run: Arc::new(run) }
}

fn text(call: &Value, field: &str) -> String {
    call[field].as_str().unwrap_or_else(|| panic!("{field} of {call}")).to_owned()
}

/// Makes `call` through `ctx`; what it returned, in the API's JSON form.
async fn perform(ctx: &Context, call: &Value, step_ran: &AtomicBool) -> Result<Value, Error> {
    Ok(match call["call"].as_str().unwrap() {
        "createToken" => {
            let options: CreateTokenRequest = serde_json::from_value(call["options"].clone()).unwrap();
            encode(&ctx.create_token(options).await?)
        }
        "step" => {
            ctx.step(&text(call, "name"), || async {
                step_ran.store(true, Ordering::SeqCst);
                Value::Null
            })
            .await?
        }
        "forToken" => match ctx.wait_for_token::<Value>(text(call, "token")).await? {
            WaitResult::Completed(output) => json!({ "ok": true, "output": output }),
            WaitResult::TimedOut(error) => json!({ "ok": false, "error": { "message": error.message } }),
            WaitResult::Rejected(error) => {
                json!({ "ok": false, "error": { "message": error.message, "code": error.code }, "rejected": true })
            }
        },
        "forAny" => set(call, ctx.wait_for_any(waits(call)).await?),
        "forAll" => set(call, ctx.wait_for_all(waits(call)).await?),
        "forAtLeast" => {
            let needed = usize::try_from(call["needed"].as_u64().unwrap()).unwrap();
            set(call, ctx.wait_for_at_least(needed, waits(call)).await?)
        }
        "waitFor" => {
            ctx.wait_for(Duration::from_millis(call["ms"].as_u64().unwrap())).await?;
            Value::Null
        }
        "waitUntil" => {
            let until: Timestamp = text(call, "until").parse().unwrap();
            ctx.wait_until(until).await?;
            Value::Null
        }
        "completeToken" => {
            ctx.complete_token(text(call, "token"), &call["output"]).await?;
            json!({ "success": true })
        }
        "retrieveToken" => encode(&ctx.retrieve_token(text(call, "token")).await?.detail),
        "listTokens" => {
            let after = call["after"].as_str().map(str::to_owned);
            encode(&ctx.list_tokens_page(&ListFilter::default(), after).await?)
        }
        "now" => json!(ctx.now().await?.to_string()),
        "randomU64" => json!(ctx.random_u64().await?.to_string()),
        "uuid" => json!(ctx.uuid().await?),
        other => panic!("a fixture call this test does not know: {other}"),
    })
}

/// The waits of a set call: `{"token"}`, `{"ms"}` or `{"until"}` each.
fn waits(call: &Value) -> Vec<Wait> {
    let waits = call["waits"].as_array().unwrap_or_else(|| panic!("waits of {call}"));
    waits
        .iter()
        .map(|wait| match (wait["token"].as_str(), wait["ms"].as_u64(), wait["until"].as_str()) {
            (Some(token), None, None) => Wait::token(token),
            (None, Some(ms), None) => Wait::duration(Duration::from_millis(ms)),
            (None, None, Some(until)) => Wait::until(until.parse().unwrap()),
            _ => panic!("a wait this test does not know: {wait}"),
        })
        .collect()
}

/// A set wait's result in the API's JSON form (a timeout by its message alone), after checking
/// what `into_result` gives: the waitpoints, or the error `unwrapError` says.
fn set(call: &Value, result: WaitSetResult) -> Value {
    let waitpoints: Vec<Value> = result
        .waitpoints()
        .iter()
        .map(|member| match &member.state {
            MemberState::Completed(output) => json!({ "id": member.id, "ok": true, "output": output }),
            MemberState::TimedOut(error) => {
                json!({ "id": member.id, "ok": false, "error": { "message": error.message } })
            }
            MemberState::Rejected(error) => {
                json!({ "id": member.id, "ok": false, "error": { "message": error.message, "code": error.code }, "rejected": true })
            }
            MemberState::Pending => json!({ "id": member.id, "pending": true }),
        })
        .collect();
    let returned = json!({ "ok": result.is_ok(), "waitpoints": waitpoints });
    let members = result.waitpoints().to_vec();
    match (result.into_result(), call["unwrapError"].as_str()) {
        (Ok(unwrapped), None) => assert_eq!(unwrapped, members),
        (Err(error), Some(message)) => assert_eq!(error.message, message, "into_result of {call}"),
        (unwrapped, expected) => panic!("into_result gave {unwrapped:?}, the fixture expects the error {expected:?}"),
    }
    returned
}

/// A result in the API's JSON form.
fn encode<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// `expected` as this SDK compares it: a timeout error by its message alone.
fn comparable(call: &Value) -> Value {
    let mut expected = call["returns"].clone();
    if call["call"] == "forToken" && expected["ok"] == false {
        expected = json!({ "ok": false, "error": { "message": expected["error"]["message"] } });
    }
    if let Some(waitpoints) = expected.get_mut("waitpoints").and_then(Value::as_array_mut) {
        for member in waitpoints.iter_mut().filter(|member| member["ok"] == false) {
            member["error"] = json!({ "message": member["error"]["message"] });
        }
    }
    expected
}

#[tokio::test]
async fn the_shared_journal_fixtures_replay_as_recorded() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/journals");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the fixtures are in {}", folder.display());
    let (url, requests) = refusing_server().await;
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let journal_len = fixture.journal.len();
        let ctx = context(Client::new(&url, "tr_dev_fixtures").unwrap(), fixture.journal);
        let step_ran = AtomicBool::new(false);
        for (index, call) in fixture.calls.iter().enumerate() {
            let returned = perform(&ctx, call, &step_ran).await;
            if fixture.diverges_at == Some(index) {
                let Err(Error::NonDeterminism(message)) = returned else {
                    panic!("{name}: call {index} should diverge, got {returned:?}");
                };
                for mention in &fixture.mentions {
                    assert!(message.contains(mention), "{name}: {message:?} does not mention {mention:?}");
                }
                break;
            }
            let returned = returned.unwrap_or_else(|error| panic!("{name}: call {index} failed: {error}"));
            assert_eq!(returned, comparable(call), "{name}: call {index}");
        }
        let replayed_all = ctx.run.cursor.lock().await.next_seq as usize == journal_len;
        match fixture.outcome.as_str() {
            "replayed" => assert!(replayed_all, "{name}: the code stopped before the journal's end"),
            "returnsEarly" => assert!(!replayed_all, "{name}: the code should stop before the journal's end"),
            "diverges" => assert!(fixture.diverges_at.is_some(), "{name}: where it diverges"),
            other => panic!("{name}: an outcome this test does not know: {other}"),
        }
        assert!(!step_ran.load(Ordering::SeqCst), "{name}: a replayed step ran its function");
        assert_eq!(requests.load(Ordering::SeqCst), 0, "{name}: a replay called the server");
    }
}
