//! `waitpoint env`: create, list and re-key environments.

use clap::Subcommand;
use serde_json::json;
use waitpoint_engine::SystemClock;
use waitpoint_engine::environments::{create_environment, rotate_api_key};
use waitpoint_types::Environment;

use crate::database::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// Create an environment and print its secret key.
    Create {
        /// Its name: lowercase letters, digits, '-' and '_'.
        name: String,
    },
    /// List environments with their secret keys (one JSON object per line).
    List,
    /// Give an environment a new secret key; the old one stops working within seconds.
    /// Callback URLs and public access tokens already handed out keep working.
    RotateKey {
        /// The environment's name.
        name: String,
    },
}

pub(crate) async fn run(command: EnvCommand, database: &DatabaseArgs) -> anyhow::Result<()> {
    let opened = database.open().await?;
    for warning in &opened.warnings {
        eprintln!("warning: {warning}");
    }
    let store = &*opened.store;
    match command {
        EnvCommand::Create { name } => print(&create_environment(store, &SystemClock, &name).await?),
        EnvCommand::List => {
            for environment in store.environment_list().await? {
                print(&environment);
            }
        }
        EnvCommand::RotateKey { name } => print(&rotate_api_key(store, &name).await?),
    }
    Ok(())
}

fn print(environment: &Environment) {
    let line = json!({
        "name": environment.name,
        "id": environment.id.public(),
        "secretKey": environment.api_key.expose(),
        "createdAt": environment.created_at,
    });
    println!("{line}");
}
