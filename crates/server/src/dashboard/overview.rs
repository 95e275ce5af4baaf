//! The overview: counts by status for tokens and runs, the runs waiting longest, the tokens
//! timing out soonest, and what this server is.

use axum::extract::State;
use axum::response::Response;
use maud::html;
use waitpoint_engine::COUNT_CAP;

use super::Dashboard;
use super::layout::{self, Section};
use super::session::Signed;
use crate::pages::time;

/// A count as shown: exact, or "more than" past the cap.
fn count(n: u64) -> String {
    if n > COUNT_CAP { format!("{COUNT_CAP}+") } else { n.to_string() }
}

/// `GET /`.
pub(crate) async fn page(State(dashboard): State<Dashboard>, Signed(session): Signed) -> Response {
    let engine = &dashboard.engine;
    let overview = match engine.overview(&session.environment).await {
        Ok(overview) => overview,
        Err(error) => return layout::engine_error(error),
    };
    let now = engine.clock().now();
    let content = html! {
        section.cards #counts data-refresh="always" {
            div.card {
                h2 { "Tokens" }
                dl.counts {
                    @for (status, n) in &overview.tokens {
                        div { dt { a href={ "/tokens?status=" (status.as_str()) } { (layout::status(status.as_str())) } }
                              dd { (count(*n)) } }
                    }
                }
            }
            div.card {
                h2 { "Runs" }
                dl.counts {
                    @for (status, n) in &overview.runs {
                        div { dt { a href={ "/runs?status=" (status.as_str()) } { (layout::status(status.as_str())) } }
                              dd { (count(*n)) } }
                    }
                }
            }
        }
        section #waiting data-refresh="always" {
            h2 { "Runs waiting longest" }
            @if overview.waiting_longest.is_empty() {
                p.empty { "No run is waiting." }
            } @else {
                table {
                    thead { tr { th { "Run" } th { "Task" } th { "Waiting since" } } }
                    tbody {
                        @for run in &overview.waiting_longest {
                            tr {
                                td { a href={ "/runs/" (run.id.public()) } { code { (run.id.public()) } } }
                                td { (run.task_id) }
                                td { (time(run.updated_at)) }
                            }
                        }
                    }
                }
            }
        }
        section #soonest data-refresh="always" {
            h2 { "Tokens timing out soonest" }
            @if overview.timing_out_soonest.is_empty() {
                p.empty { "No waiting token has a deadline." }
            } @else {
                table {
                    thead { tr { th { "Token" } th { "Times out" } th { "Tags" } } }
                    tbody {
                        @for token in &overview.timing_out_soonest {
                            tr {
                                td { a href={ "/tokens/" (token.id.public()) } { code { (token.id.public()) } } }
                                td { @if let Some(at) = token.timeout_at { (time(at)) } }
                                td { @for tag in &token.tags { span.tag { (tag) } " " } }
                            }
                        }
                    }
                }
            }
        }
        p.about {
            "waitpoint " (env!("CARGO_PKG_VERSION")) " · storage: " (overview.backend) " · now: " (time(now))
        }
    };
    layout::page(&session, Section::Overview, "Overview", "overview", content)
}
