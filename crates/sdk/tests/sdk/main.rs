//! The SDK against a real server in process, on a real socket, over a real SQLite file: the
//! client, the worker and the run context. One test binary, one harness.

mod client;
mod failures;
mod harness;
mod replay;
mod sets;
mod worker;
