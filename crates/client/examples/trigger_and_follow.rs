//! Triggers a job, streams its log while it runs and prints how it ended:
//! `cargo run -p holt-client --example trigger_and_follow -- http://127.0.0.1:8446 TEMPLATE [KEY]`.

use holt_client::{Client, LogFormat, LogOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(template)) = (args.next(), args.next()) else {
        eprintln!("usage: trigger_and_follow URL TEMPLATE [KEY]");
        std::process::exit(2);
    };
    let mut client = Client::new(&url)?;
    if let Some(key) = args.next() {
        client = client.with_key(key);
    }
    let no_variables: &[(&str, &str)] = &[];
    let job = client.trigger(&template, no_variables, None).await?;
    eprintln!("job {}", job.token);
    let options = LogOptions {
        follow: true,
        format: LogFormat::Text,
        offset: 0,
    };
    let mut log = client.logs(&job.token, options).await?;
    while let Some(text) = log.chunk().await? {
        print!("{}", String::from_utf8_lossy(&text));
    }
    let status = client.wait_for_end(&job.token).await?;
    eprintln!("ended {status}");
    Ok(())
}
