//! The `waitpoint` binary as people run it: real processes on real databases (an SQLite file,
//! a PostgreSQL schema), stopped with SIGTERM or killed with SIGKILL.

mod processes;

use std::io::BufRead;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use processes::{BIN, Database, KEY, Server, stdout_json};
use serde_json::{Value, json};
use waitpoint_sdk::{Client, CreateTokenRequest};

#[tokio::test]
async fn serve_prints_the_dev_key_takes_cli_commands_and_stops_cleanly_on_sigterm() {
    let database = Database::sqlite();
    let server = Server::start(&database);
    assert!(!server.banner.iter().any(|line| line.contains(KEY)), "a key given by the operator is never printed");
    assert!(server.banner[1].contains("WAITPOINT_DEV_SECRET_KEY"), "{:?}", server.banner);
    assert!(server.banner[2].starts_with("Try: curl"));
    assert_eq!(server.banner[3], format!("Dashboard: {}/ (sign in with an environment's secret key)", server.api_url));
    assert!(server.sign_in_link.starts_with(&format!("{}/sign-in/link/", server.api_url)), "{:?}", server.banner);

    let created = stdout_json(&server.cli(&[
        "token",
        "create",
        "--timeout",
        "1h",
        "--idempotency-key",
        "order-1",
        "--idempotency-key-ttl",
        "2h",
        "--tag",
        "a",
        "--tag",
        "b",
    ]));
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["isCached"], false);
    assert!(created["url"].as_str().unwrap().starts_with(&server.api_url));

    let done = stdout_json(&server.cli(&["token", "complete", id, "--data", r#"{"status":"approved"}"#]));
    assert_eq!(done, json!({ "success": true }));
    let token = stdout_json(&server.cli(&["token", "get", id]));
    assert_eq!(token["status"], "COMPLETED");
    assert_eq!(token["output"], r#"{"json":{"status":"approved"}}"#);
    assert_eq!(token["tags"], json!(["a", "b"]));

    let listed = server.cli(&["token", "list", "--status", "COMPLETED", "--tag", "b"]);
    assert!(listed.status.success());
    let lines: Vec<Value> = listed.stdout.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], id);

    // Trigger.dev's variable names work too.
    let trigger = Command::new(BIN)
        .args(["token", "get", id])
        .env("TRIGGER_API_URL", &server.api_url)
        .env("TRIGGER_SECRET_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(stdout_json(&trigger)["id"], id);

    let bad = server.cli(&["token", "complete", id, "--data", "not json"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be JSON"));
    let missing = server.cli(&["token", "get", "waitpoint_cnothere"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404: Waitpoint not found"));

    // Runs: data on stdout; a list that matches nothing says so on stderr.
    let triggered = stdout_json(&server.cli(&["run", "trigger", "nobody-runs-this", "--payload", "{}"]));
    assert!(triggered["id"].as_str().unwrap().starts_with("run_"));
    let none = server.cli(&["run", "list", "--task", "nor-this"]);
    assert!(none.status.success() && none.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&none.stderr), "no runs match\n");

    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test]
async fn env_commands_manage_the_keys_of_a_running_server() {
    let database = Database::sqlite();
    let server = Server::start(&database);
    let env = |args: &[&str]| Command::new(BIN).arg("env").args(args).args(database.args()).output().unwrap();

    let prod = stdout_json(&env(&["create", "prod"]));
    let prod_key = prod["secretKey"].as_str().unwrap().to_owned();
    assert!(prod_key.starts_with("tr_prod_"));
    let prod_client = Client::new(&server.api_url, &prod_key).unwrap();
    let token = prod_client.create_token(CreateTokenRequest::new()).await.unwrap();
    let dev_view = server.client().retrieve_token(&token.id).await;
    assert!(dev_view.is_err(), "environments are isolated");

    let listed = env(&["list"]);
    let names: Vec<String> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap()["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["dev", "prod"]);
    assert!(!env(&["create", "prod"]).status.success(), "names are unique");

    let rotated = stdout_json(&env(&["rotate-key", "prod"]));
    let new_key = rotated["secretKey"].as_str().unwrap();
    assert_ne!(new_key, prod_key);
    let rotated_client = Client::new(&server.api_url, new_key).unwrap();
    assert_eq!(
        rotated_client.retrieve_token(&token.id).await.unwrap().detail.status,
        waitpoint_sdk::WaitpointStatus::Waiting
    );
    // URLs handed out before the rotation still complete their token.
    let reply = reqwest::Client::new().post(&token.url).body(r#"{"after":"rotation"}"#).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(server.terminate(), Some(0));
}

/// Every write that got a 200 is there after SIGKILL, and the data is intact.
async fn acknowledged_writes_survive_sigkill(database: Database) {
    let server = Server::start(&database);
    let client = server.client();
    let created = join_all((0..100).map(|i| {
        let client = client.clone();
        async move { client.create_token(CreateTokenRequest::new().tags([format!("n{i}")])).await.unwrap() }
    }))
    .await;
    join_all(created.iter().step_by(2).map(|token| {
        let client = client.clone();
        async move { client.complete_token(&token.id, &json!({ "id": token.id })).await.unwrap() }
    }))
    .await;
    server.kill();

    let server = Server::start(&database);
    let client = server.client();
    for (i, token) in created.iter().enumerate() {
        let stored = client.retrieve_token(&token.id).await.unwrap();
        assert_eq!(stored.detail.tags, [format!("n{i}")]);
        if i % 2 == 0 {
            assert_eq!(stored.detail.status, waitpoint_sdk::WaitpointStatus::Completed);
            assert_eq!(stored.output::<Value>().unwrap(), Some(json!({ "id": token.id })));
        } else {
            assert_eq!(stored.detail.status, waitpoint_sdk::WaitpointStatus::Waiting);
        }
    }
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_on_sqlite() {
    acknowledged_writes_survive_sigkill(Database::sqlite()).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    acknowledged_writes_survive_sigkill(database).await;
}

/// A deadline that passes while no server runs fires as soon as one starts.
async fn deadlines_passed_while_down_fire_at_start_up(database: Database) {
    let server = Server::start(&database);
    let token = server.client().create_token(CreateTokenRequest::new().timeout("1s")).await.unwrap();
    assert_eq!(server.terminate(), Some(0));
    // The deadline has to pass in real time: a second, while nothing runs.
    std::thread::sleep(Duration::from_millis(1_100));

    let server = Server::start(&database);
    let client = server.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored = client.retrieve_token(&token.id).await.unwrap();
        if stored.detail.status == waitpoint_sdk::WaitpointStatus::TimedOut {
            assert!(stored.timeout_error().unwrap().starts_with("Waitpoint timed out at "));
            break;
        }
        assert!(Instant::now() < deadline, "the missed deadline did not fire after start-up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test]
async fn deadlines_passed_while_down_fire_at_start_up_on_sqlite() {
    deadlines_passed_while_down_fire_at_start_up(Database::sqlite()).await;
}

#[tokio::test]
async fn deadlines_passed_while_down_fire_at_start_up_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    deadlines_passed_while_down_fire_at_start_up(database).await;
}

/// A token that finished longer ago than `--retention` is deleted when a server starts (and
/// then every few minutes); with `--retention none` it stays. `waitpoint vacuum` rewrites the
/// SQLite file, and says what it does on PostgreSQL.
async fn retention_deletes_at_start_up_and_none_keeps_everything(database: Database) {
    let with = |retention: &str| Server::start_with(&database, &["--listen", "127.0.0.1:0", "--retention", retention]);
    let server = with("none");
    let client = server.client();
    let token = client.create_token(CreateTokenRequest::new()).await.unwrap();
    client.complete_token(&token.id, &json!({ "ok": true })).await.unwrap();
    let waiting = client.create_token(CreateTokenRequest::new().timeout("1h")).await.unwrap();
    assert_eq!(server.terminate(), Some(0));
    // The token has to finish longer ago than the retention in real time: a second.
    std::thread::sleep(Duration::from_millis(1_100));

    let server = with("none");
    assert!(server.client().retrieve_token(&token.id).await.is_ok(), "none keeps everything");
    assert_eq!(server.terminate(), Some(0));

    let server = with("1s");
    let client = server.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.retrieve_token(&token.id).await {
            Err(waitpoint_sdk::Error::Api { status: 404, .. }) => break,
            other => assert!(other.is_ok() && Instant::now() < deadline, "not deleted after start-up: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.retrieve_token(&waiting.id).await.is_ok(), "a waiting token stays");
    assert_eq!(server.terminate(), Some(0));

    let vacuum = Command::new(BIN).arg("vacuum").args(database.args()).output().unwrap();
    let said = String::from_utf8_lossy(&vacuum.stderr);
    match database {
        Database::Sqlite(_) => assert!(vacuum.status.success() && said.starts_with("Vacuumed "), "{said}"),
        Database::Postgres(_) => assert!(!vacuum.status.success() && said.contains("autovacuum"), "{said}"),
    }
}

#[tokio::test]
async fn retention_deletes_at_start_up_and_none_keeps_everything_on_sqlite() {
    retention_deletes_at_start_up_and_none_keeps_everything(Database::sqlite()).await;
}

#[tokio::test]
async fn retention_deletes_at_start_up_and_none_keeps_everything_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    retention_deletes_at_start_up_and_none_keeps_everything(database).await;
}

#[tokio::test]
async fn bad_settings_stop_the_server_with_a_clear_message() {
    let database = Database::sqlite();
    let run = |extra: &[&str], key: &str| {
        Command::new(BIN)
            .arg("serve")
            .args(database.args())
            .args(extra)
            .env("WAITPOINT_DEV_SECRET_KEY", key)
            .output()
            .unwrap()
    };
    let cases: [(&[&str], &str, &str); 8] = [
        (&["--default-timeout", "ten minutes"], KEY, "--default-timeout"),
        (
            &["--retention", "banana"],
            KEY,
            "invalid --retention (a duration, or \"none\"): \"banana\" is not a duration",
        ),
        (&["--header-timeout", "0s"], KEY, "invalid --header-timeout"),
        (&["--max-connections", "0"], KEY, "--max-connections"),
        (&["--database", "mysql://x"], KEY, "unsupported --database scheme \"mysql\""),
        (&["--database", "host=db password=hunter2"], KEY, "not shown: it may hold a password"),
        (&[], "not-a-key", "WAITPOINT_DEV_SECRET_KEY"),
        (&["--listen", "256.0.0.1:1"], KEY, "could not listen"),
    ];
    for (extra, key, hint) in cases {
        let output = run(extra, key);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(hint), "{extra:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "a password was echoed: {stderr}");
    }
}

/// Starts `waitpoint serve` on `data_dir` (no dev key given), returns its banner and what it
/// logged at warn level before the banner, and stops it.
fn first_words(data_dir: &std::path::Path) -> (Vec<String>, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("WAITPOINT_DEV_SECRET_KEY")
        .env("WAITPOINT_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let banner: Vec<String> = (0..3)
        .map(|_| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim_end().to_owned()
        })
        .collect();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    (banner, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The banner's one-time link signs a browser in to `dev` once: the answer sets the session
/// cookie and leaves the link's address; the same link then signs no one in.
#[tokio::test]
async fn the_printed_sign_in_link_signs_in_once() {
    let database = Database::sqlite();
    let server = Server::start(&database);
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let first = browser.get(&server.sign_in_link).send().await.unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], "/");
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("waitpoint_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict")
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let overview = browser.get(format!("{}/", server.api_url)).header("cookie", &session).send().await.unwrap();
    assert_eq!(overview.status(), 200);
    let page = overview.text().await.unwrap();
    assert!(page.contains("Overview") && page.contains(">dev<"), "the dev environment's overview");
    assert!(!page.contains(KEY), "the key never appears in a page");
    let again = browser.get(&server.sign_in_link).send().await.unwrap();
    assert_eq!(again.status(), 401, "the link is used up");
}

/// Regression: the dev key was printed on every start. It is printed once, when it is made.
#[tokio::test]
async fn the_dev_key_is_printed_when_it_is_made_and_not_again() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let (banner, _) = first_words(&data);
    let key = banner[1].strip_prefix("Created environment \"dev\", secret key: ").expect("the new key is printed");
    assert!(banner[2].contains(key), "{banner:?}");
    let (banner, _) = first_words(&data);
    assert!(!banner.iter().any(|line| line.contains(key)), "{banner:?}");
    assert!(banner[1].contains("waitpoint env list"), "{banner:?}");
    let listed = Command::new(BIN).args(["env", "list", "--data-dir"]).arg(&data).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(key));
}

/// Regression: the data directory and database were readable by every local user. A new one
/// is private; an existing one that is open gets a warning naming the fix.
#[cfg(unix)]
#[tokio::test]
async fn an_open_data_directory_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let (_, logged) = first_words(&data);
    assert!(!logged.contains("open to other users"), "{logged}");
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, logged) = first_words(&data);
    assert!(logged.contains("open to other users (mode 755)") && logged.contains("chmod 700"), "{logged}");
}

/// Regression: a server started under a low open-file limit kept it (and ran out of
/// descriptors), and one half-sent request kept SIGTERM from stopping it for over 40 s.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn serve_raises_its_open_file_limit_and_stops_on_time_despite_a_half_sent_request() {
    use std::io::Write;

    let database = Database::sqlite();
    let mut through_shell = Command::new("sh");
    through_shell.args(["-c", r#"ulimit -Sn 256 && exec "$0" "$@""#, BIN]);
    let extra = ["--listen", "127.0.0.1:0", "--shutdown-timeout", "1s"];
    let server = Server::start_through(through_shell, &database, &extra);

    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files: Vec<&str> =
        limits.lines().find(|l| l.starts_with("Max open files")).unwrap().split_whitespace().collect();
    let (soft, hard) = (open_files[3], open_files[4]);
    assert_eq!(soft, hard, "{limits}");

    let address = server.api_url.trim_start_matches("http://");
    let mut half_sent = std::net::TcpStream::connect(address).unwrap();
    let head = format!(
        "POST /api/v1/waitpoints/tokens HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"timeout\": "
    );
    half_sent.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    assert_eq!(server.terminate(), Some(0));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?} with a shutdown timeout of 1 s");
}

/// Regression: SIGTERM waited for idle workers' held polls (up to the shutdown timeout): the
/// polls are answered at once and an idle server stops at once.
#[tokio::test]
async fn an_idle_worker_does_not_hold_up_the_shutdown() {
    let database = Database::sqlite();
    let server = Server::start(&database);
    let http = reqwest::Client::new();
    let poll = {
        let request = http
            .post(format!("{}/api/v1/workers/worker_idle/poll", server.api_url))
            .bearer_auth(KEY)
            .json(&json!({ "tasks": [{ "id": "idle-task", "slots": 0 }], "waitMs": 30_000, "holding": [] }));
        tokio::spawn(request.send())
    };
    let client = server.client();
    processes::eventually("the poll to be held", Duration::from_secs(10), || async {
        let triggered = client.trigger("idle-task", &json!({}), None).await.unwrap();
        triggered.hint.is_none().then_some(())
    })
    .await;

    let started = Instant::now();
    assert_eq!(server.terminate(), Some(0));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "stopping took {took:?} with an idle worker polling");
    let answer = poll.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({ "runs": [] }));
}

/// A backup taken during a write burst holds every write acknowledged before it started, and a
/// server started on it serves them.
#[tokio::test]
async fn a_backup_taken_during_a_write_burst_restores_every_acknowledged_write() {
    let database = Database::sqlite();
    let Database::Sqlite(data) = &database else { unreachable!() };
    let server = Server::start(&database);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Instant)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (client, acknowledged, stop) = (server.client(), acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let created = client.create_token(CreateTokenRequest::default()).await.unwrap();
                    acknowledged.lock().unwrap().push((created.id, Instant::now()));
                }
            })
        })
        .collect();
    processes::eventually("a burst of writes", Duration::from_secs(30), || async {
        (acknowledged.lock().unwrap().len() >= 300).then_some(())
    })
    .await;

    let copy = tempfile::TempDir::new().unwrap();
    let file = copy.path().join("waitpoint.db");
    let started = Instant::now();
    let backup = Command::new(BIN).args(["backup", "--data-dir"]).arg(data.path()).arg("--to").arg(&file).output();
    let backup = backup.unwrap();
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = Command::new(BIN).args(["backup", "--data-dir"]).arg(data.path()).arg("--to").arg(&file).output();
    assert!(String::from_utf8_lossy(&again.unwrap().stderr).contains("exists"), "a backup never overwrites");

    let restored_database = Database::Sqlite(copy);
    let restored = Server::start(&restored_database);
    let client = restored.client();
    let before: Vec<String> =
        acknowledged.lock().unwrap().iter().filter(|(_, at)| *at < started).map(|(id, _)| id.clone()).collect();
    assert!(before.len() >= 300);
    for id in &before {
        client.retrieve_token(id).await.unwrap_or_else(|e| panic!("{id} acknowledged before the backup: {e}"));
    }
}

/// `token create --approval` shapes the token's approval page, whose address the answer gives.
#[tokio::test]
async fn token_create_takes_an_approval_page() {
    let database = Database::sqlite();
    let server = Server::start(&database);
    let created = stdout_json(&server.cli(&["token", "create", "--approval", r#"{"title":"Publish <b>Q3</b>?"}"#]));
    let page = created["approvalUrl"].as_str().expect("an approval page address");
    let html = reqwest::get(page).await.unwrap().text().await.unwrap();
    assert!(html.contains("Publish &lt;b&gt;Q3&lt;/b&gt;?"), "{html}");
    let bad = server.cli(&["token", "create", "--approval", "title"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--approval must be a JSON object"));
}

#[tokio::test]
async fn token_reject_rejects_with_an_error_and_get_tells_the_outcome() {
    let database = Database::sqlite();
    let server = Server::start(&database);
    let created = stdout_json(&server.cli(&["token", "create"]));
    let id = created["id"].as_str().unwrap();
    assert!(created["rejectUrl"].as_str().is_some_and(|url| url.contains("/reject/")), "{created}");
    let rejected =
        server.cli(&["token", "reject", id, "--message", "declined", "--code", "NO", "--data", r#"{"n":1}"#]);
    assert!(rejected.status.success(), "{}", String::from_utf8_lossy(&rejected.stderr));
    let token = stdout_json(&server.cli(&["token", "get", id]));
    assert_eq!((token["status"].as_str(), token["outcome"].as_str()), (Some("TIMED_OUT"), Some("REJECTED")));
    assert_eq!(token["output"], r#"{"code":"NO","message":"declined","data":{"n":1}}"#);
    let bad = server.cli(&["token", "reject", id, "--message", "x", "--data", "{oops"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--data must be JSON"));
}
