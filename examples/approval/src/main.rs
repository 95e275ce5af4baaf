//! The approval flow of the waitpoint spec, end to end against a running server.
//!
//! A task asks a person to approve a document: it creates a token with a timeout and an
//! approval page, shows the page's address (a person opens it and clicks Approve or Reject; no
//! sign-in) and the token's URL (a program may POST the answer there), waits, and continues on
//! "approved" or "rejected", or handles the timeout. While it waits, the run holds no worker
//! slot.
//!
//! ```sh
//! waitpoint serve                                  # in one terminal; copy the dev key
//! WAITPOINT_SECRET_KEY=tr_dev_… cargo run -p approval
//! # then open the approval page it prints, or answer from anywhere:
//! curl -X POST '<token url>' -H 'Content-Type: application/json' -d '{"status":"approved"}'
//! ```
//!
//! `--auto-approve` answers by itself after a second (the tests use it); `--timeout 5s` shows
//! the timeout path.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use waitpoint_sdk::{
    Approval as ApprovalPage, Client, Context, CreateTokenRequest, CreateTokenResponse, RunStatus, Task, TaskError,
    WaitResult, Worker, WorkerConfig,
};

/// What the approver sends: `{"status": "approved"}` or `{"status": "rejected"}`. Any other
/// answer fails the run, naming the token and this type (retrying would not change it).
#[derive(Debug, Deserialize)]
struct Approval {
    status: Decision,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Decision {
    Approved,
    Rejected,
}

/// The run's input.
#[derive(Debug, Serialize, Deserialize)]
struct Document {
    title: String,
    timeout: String,
}

/// The task: ask, wait, act on the answer.
async fn approve_document(ctx: Context, document: Document) -> Result<Value, TaskError> {
    let page = ApprovalPage { title: Some(format!("Publish {:?}?", document.title)), ..ApprovalPage::default() };
    let token = ctx.create_token(CreateTokenRequest::new().timeout(&document.timeout).approval(page)).await?;
    // A step, so the request is sent once even if the run replays after a crash.
    ctx.step("ask for approval", || ask_for_approval(&document, &token)).await?;
    let outcome = match ctx.wait_for_token(&token).await? {
        WaitResult::Completed(Approval { status: Decision::Approved }) => "published",
        WaitResult::Completed(Approval { status: Decision::Rejected }) => "sent back to the author",
        WaitResult::TimedOut(timeout) => {
            ctx.warn(format!("no answer: {timeout}"));
            "escalated to a manager"
        }
        WaitResult::Rejected(rejection) => {
            ctx.warn(format!("withdrawn: {rejection}"));
            "withdrawn"
        }
    };
    Ok(json!({ "document": document.title, "outcome": outcome }))
}

/// Asks a person: here, by showing the approval page to open, and the command that answers.
async fn ask_for_approval(document: &Document, token: &CreateTokenResponse) {
    eprintln!("\nApproval needed for {:?}. Answer within {}:", document.title, document.timeout);
    if let Some(page) = &token.approval_url {
        eprintln!("  open {page}");
    }
    eprintln!(
        "  or: curl -X POST '{}' -H 'Content-Type: application/json' -d '{{\"status\":\"approved\"}}'\n",
        token.url
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    waitpoint_sdk::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let auto_approve = args.iter().any(|a| a == "--auto-approve");
    let timeout = args.iter().position(|a| a == "--timeout").and_then(|i| args.get(i + 1)).cloned();
    let client = Client::from_env()?;

    let worker =
        Worker::new(client.clone(), [Task::new("approve-document", approve_document)], WorkerConfig::from_env())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run_until(stopped));

    let document = Document { title: "Q3 budget".into(), timeout: timeout.unwrap_or_else(|| "10m".into()) };
    let run = client.trigger("approve-document", &document, None).await?.id;
    eprintln!("Triggered {run}");
    let run = loop {
        let detail = client.retrieve_run(&run).await?;
        if auto_approve && detail.status == RunStatus::Waiting {
            let token = &detail.waiting_on[0].id;
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.complete_token(token, &json!({ "status": "approved" })).await?;
        }
        if detail.status.is_final() {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = stop.send(());
    worker.await??;
    match (run.status, run.output) {
        (RunStatus::Completed, Some(output)) => println!("{output}"),
        (status, _) => bail!("the run ended {status}: {:?}", run.error),
    }
    Ok(())
}
