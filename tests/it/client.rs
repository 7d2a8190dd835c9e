//! `holt-client` against a real holtd: each call, typed answers, and a refusal (with the
//! server's status and one line) told apart from an unreachable server.

use holt_client::{Canceled, Client, Error, JobQuery, JobStatus, LogFormat, LogOptions};
use holt_tests::Holtd;

use crate::templates;

const ADMIN: &str = "admin-secret";

async fn server() -> (Holtd, Client) {
    let hex = holt_tests::sha256_hex(ADMIN);
    let holtd = Holtd::start(&templates::all(), &["--admin-key-sha256", &hex]).await;
    let client = Client::new(&format!("http://{}", holtd.addr)).unwrap();
    (holtd, client)
}

async fn read_all(client: &Client, token: &str, options: LogOptions) -> String {
    let mut log = client.logs(token, options).await.unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = log.chunk().await.unwrap() {
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).unwrap()
}

#[tokio::test]
async fn every_call_answers_typed() {
    let (holtd, client) = server().await;
    let keyed = client.clone().with_key("secure123");
    let job = keyed
        .trigger("hdars", &[("TargetServer", "a \"b\" c=d")], Some("once"))
        .await
        .unwrap();
    assert!(!job.existing);
    let again = keyed
        .trigger("hdars", &[("TargetServer", "a \"b\" c=d")], Some("once"))
        .await
        .unwrap();
    assert_eq!(
        (again.token.as_str(), again.existing),
        (job.token.as_str(), true)
    );
    assert_eq!(
        keyed.wait_for_end(&job.token).await.unwrap(),
        JobStatus::Succeeded
    );
    assert_eq!(
        keyed.status(&job.token).await.unwrap(),
        JobStatus::Succeeded
    );

    let followed = read_all(
        &keyed,
        &job.token,
        LogOptions {
            follow: true,
            ..LogOptions::default()
        },
    )
    .await;
    assert_eq!(followed, holtd.logs(&job.token, "&key=secure123").await);
    assert!(followed.contains("Deploying to a \"b\" c=d"), "{followed}");
    let ndjson = read_all(
        &keyed,
        &job.token,
        LogOptions {
            format: LogFormat::Ndjson,
            ..LogOptions::default()
        },
    )
    .await;
    assert!(ndjson.lines().all(|l| l.starts_with("{\"")), "{ndjson}");

    assert_eq!(
        keyed.cancel(&job.token).await.unwrap(),
        Canceled::AlreadyEnded(JobStatus::Succeeded)
    );
    let sleeper = client
        .trigger("sleeps", &[("Seconds", "60")], None)
        .await
        .unwrap();
    holtd.wait_status(&sleeper.token, "Executing").await;
    assert_eq!(
        client.cancel(&sleeper.token).await.unwrap(),
        Canceled::Stopped(JobStatus::Error)
    );

    let admin = client.clone().with_key(ADMIN);
    let page = admin
        .list_jobs(&JobQuery {
            template: Some("hdars".into()),
            ..JobQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].token, job.token);
    assert_eq!(page.jobs[0].source, holt_client::TriggerSource::Api);
    let templates = admin.list_templates().await.unwrap();
    let hdars = templates.iter().find(|t| t.name == "hdars").unwrap();
    assert!(hdars.has_key);
    assert_eq!(hdars.description.as_deref(), Some("Deploy HDARS"));
}

#[tokio::test]
async fn refused_and_unreachable_are_told_apart() {
    let (holtd, client) = server().await;
    match client.trigger("hdars", &[("A", "1")], None).await {
        Err(Error::Refused { status, reason }) => {
            assert_eq!((status, reason.as_str()), (403, "missing API key"));
        }
        other => panic!("{other:?}"),
    }
    match client.status("12345").await {
        Err(Error::Refused { status, reason }) => {
            assert_eq!((status, reason.as_str()), (400, "unknown token"));
        }
        other => panic!("{other:?}"),
    }
    match client.trigger("nosuch", &[("A", "1")], None).await {
        Err(Error::Refused { status, reason }) => {
            assert_eq!((status, reason.as_str()), (404, "no template named nosuch"));
        }
        other => panic!("{other:?}"),
    }
    let addr = holtd.addr;
    drop(holtd);
    match client.status("1").await {
        Err(e @ Error::Unreachable { .. }) => {
            assert!(e.to_string().contains(&addr.to_string()), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Client::new("https://example.com"),
        Err(Error::InvalidUrl(_))
    ));
    assert!(matches!(
        Client::new("not a url"),
        Err(Error::InvalidUrl(_))
    ));
}
