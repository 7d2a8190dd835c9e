//! Holt's engine inside another program, with no server and no database: one template from a
//! TOML string, jobs kept in a `MemoryStore`, one job triggered and waited for, its log printed.
//!
//! Run it with `cargo run -p holt-engine --example embed`. It exits 0 when the job succeeded.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use holt_domain::{JobStatus, Template, TemplateCatalog, Variables};
use holt_engine::{Engine, EngineConfig};
use holt_storage::{JobStore, MemoryStore};

const TEMPLATE: &str = r#"
description = "Greets someone, in the log and through a program"
plan = '''
Log-Information "Hello, $Name.";
Log-Information "This job runs inside the embedding program.";
Exec echo (Arguments: "'$Name, from a child process'");
'''

[variables]
Name = "world"
"#;

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let template = Template::from_toml("greet".parse()?, TEMPLATE)?;
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let engine = Engine::start(
        store.clone(),
        TemplateCatalog::new([template]),
        EngineConfig::default(),
    )
    .await?;

    let greet = engine
        .templates()
        .get(&"greet".parse()?)
        .cloned()
        .ok_or("the template was not loaded")?;
    let variables: Variables = [("Name".parse()?, "Holt".to_owned())].into_iter().collect();
    let token = engine.trigger(&greet, &variables, None).await?.token();

    // Woken when the job ends; the minute is only a bound.
    let status = engine
        .wait(token, Duration::from_secs(60))
        .await?
        .ok_or("the job was not recorded")?;
    let (log, _) = store.logs_text(token, 0, u64::MAX, 10_000).await?;
    println!("job {token}: {status}");
    print!("{log}");

    engine.shutdown().await;
    Ok(if status == JobStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
