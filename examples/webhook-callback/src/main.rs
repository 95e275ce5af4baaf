//! The webhook flow of the waitpoint spec (the Replicate example), end to end.
//!
//! A task starts a slow "prediction" on an external service and hands it the token's `url` as
//! the webhook. The service answers at once ("starting"), works, and later POSTs its result to
//! that URL, with no credentials. The run, suspended meanwhile, continues with the prediction.
//! The external service here is a small local stand-in started by the example.
//!
//! ```sh
//! waitpoint serve                                  # in one terminal; copy the dev key
//! WAITPOINT_SECRET_KEY=tr_dev_… cargo run -p webhook-callback
//! ```

use std::time::Duration;

use anyhow::bail;
use axum::Json;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use waitpoint_sdk::{Client, Context, CreateTokenRequest, RunStatus, Task, TaskError, Worker, WorkerConfig};

/// What the stand-in service is asked for.
#[derive(Debug, Serialize, Deserialize)]
struct PredictionRequest {
    input: Value,
    webhook: String,
}

/// What it calls back with.
#[derive(Debug, Serialize, Deserialize)]
struct Prediction {
    id: String,
    status: String,
    output: Value,
}

/// The stand-in for the prediction service: accepts a job, and two seconds later POSTs the
/// result to the job's webhook.
async fn predictions(Json(request): Json<PredictionRequest>) -> Json<Value> {
    let id = format!("p-{}", std::process::id());
    let result = Prediction {
        id: id.clone(),
        status: "succeeded".into(),
        output: json!(format!("a painting of {}", request.input["prompt"].as_str().unwrap_or("something"))),
    };
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sent = reqwest::Client::new().post(&request.webhook).json(&result).send().await;
        if let Err(error) = sent {
            eprintln!("the stand-in service could not call back: {error}");
        }
    });
    Json(json!({ "id": id, "status": "starting" }))
}

/// The task: start the prediction with the token's URL as webhook, wait, use the result.
async fn generate(ctx: Context, input: Value) -> Result<Value, TaskError> {
    let service = input["service"].as_str().unwrap_or_default().to_owned();
    let token = ctx.create_token(CreateTokenRequest::new().timeout("10m")).await?;
    let started: Value = ctx
        .try_step("start the prediction", || async {
            let request = PredictionRequest { input: json!({ "prompt": input["prompt"] }), webhook: token.url.clone() };
            reqwest::Client::new()
                .post(format!("{service}/predictions"))
                .json(&request)
                .send()
                .await?
                .json::<Value>()
                .await
        })
        .await?;
    ctx.info(format!("the service is {}; the run waits for its callback", started["status"]));
    let prediction: Prediction = ctx.wait_for_token(&token).await?.into_result()?;
    Ok(json!({ "prediction": prediction.id, "image": prediction.output }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    waitpoint_sdk::init_logging();
    let client = Client::from_env()?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let service = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        async move { axum::serve(listener, axum::Router::new().route("/predictions", post(predictions))).await },
    );

    let worker = Worker::new(client.clone(), [Task::new("generate-image", generate)], WorkerConfig::from_env())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run_until(stopped));

    let payload = json!({ "prompt": "a cat by Andy Warhol", "service": service });
    let run = client.trigger("generate-image", &payload, None).await?.id;
    eprintln!("Triggered {run}");
    let run = loop {
        let detail = client.retrieve_run(&run).await?;
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
