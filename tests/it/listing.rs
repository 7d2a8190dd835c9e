//! The operators' listings (`/api/jobs/list`, `/api/templates/list`) against a real holtd: the
//! admin key and its reach over every job endpoint, filters and pages, refusals, escaping, and
//! paging while jobs are triggered.

use std::collections::BTreeSet;

use holt_tests::Holtd;

use crate::templates;

const ADMIN: &str = "admin-secret";

async fn admin_holtd(extra: &[(&str, &str)]) -> Holtd {
    let hex = holt_tests::sha256_hex(ADMIN);
    let mut all = templates::all();
    all.extend_from_slice(extra);
    Holtd::start(&all, &["--admin-key-sha256", &hex]).await
}

async fn admin_get(holtd: &Holtd, path: &str) -> (u16, String) {
    let reply = holtd.request("GET", path, &[("x-apikey", ADMIN)], "").await;
    (reply.status, reply.body)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn tokens(page: &serde_json::Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["token"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn jobs_are_listed_newest_first_filtered_and_paged() {
    let holtd = admin_holtd(&[]).await;
    let a = holtd.trigger("template=warns").await;
    holtd.wait_terminal(&a, "").await;
    let b = holtd.trigger("template=fails").await;
    holtd.wait_terminal(&b, "").await;
    let c = holtd.trigger("template=warns").await;
    holtd.wait_terminal(&c, "").await;

    let (status, body) = admin_get(&holtd, "/api/jobs/list").await;
    assert_eq!(status, 200, "{body}");
    let page = json(&body);
    assert_eq!(tokens(&page), [c.clone(), b.clone(), a.clone()]);
    assert_eq!(page["next"], serde_json::Value::Null);
    let first = &page["jobs"][2];
    assert_eq!(first["template"], "warns");
    assert_eq!(first["status"], "Warning");
    assert_eq!(first["source"], "api");
    for time in ["created", "started", "finished"] {
        let text = first[time].as_str().unwrap();
        assert!(text.ends_with('Z') && text.len() == 24, "{time}: {text}");
    }

    let (_, body) = admin_get(&holtd, "/api/jobs/list?template=warns").await;
    assert_eq!(tokens(&json(&body)), [c.clone(), a.clone()]);
    let (_, body) = admin_get(&holtd, "/api/jobs/list?status=Error").await;
    assert_eq!(tokens(&json(&body)), std::slice::from_ref(&b));
    let (_, body) = admin_get(&holtd, "/api/jobs/list?template=warns&status=Error").await;
    assert!(tokens(&json(&body)).is_empty());

    // Pages of one, each from the previous page's `next`.
    let (_, body) = admin_get(&holtd, "/api/jobs/list?limit=1").await;
    let page = json(&body);
    assert_eq!(tokens(&page), std::slice::from_ref(&c));
    let next = page["next"].as_str().unwrap().to_owned();
    assert_eq!(next, c);
    let (_, body) = admin_get(&holtd, &format!("/api/jobs/list?limit=1&before={next}")).await;
    assert_eq!(tokens(&json(&body)), std::slice::from_ref(&b));

    // A `before` that names no job still bounds the page.
    let (status, body) = admin_get(&holtd, "/api/jobs/list?before=999999999").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tokens(&json(&body)).len(), 3);
}

#[tokio::test]
async fn listings_need_the_admin_key_and_a_template_key_does_not_list() {
    let holtd = admin_holtd(&[]).await;
    for path in ["/api/jobs/list", "/api/templates/list"] {
        let reply = holtd.get(path).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (403, "missing admin key")
        );
        let reply = holtd.get(&format!("{path}?key=secure123")).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (403, "invalid admin key")
        );
        let reply = holtd.get(&format!("{path}?key={ADMIN}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let reply = holtd
            .request("POST", path, &[("x-apikey", ADMIN)], "")
            .await;
        assert_eq!(reply.status, 405);
    }
    // Without an admin key configured, nobody lists, and the answer says how to enable it.
    let open = Holtd::start(&templates::all(), &[]).await;
    let reply = open.get(&format!("/api/jobs/list?key={ADMIN}")).await;
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("--admin-key-sha256"), "{}", reply.body);
}

#[tokio::test]
async fn the_admin_key_opens_every_job_endpoint_of_every_template() {
    let holtd = admin_holtd(&[]).await;
    // hdars has a key of its own; the admin key triggers it, reads it and cancels it.
    let token = holtd.trigger(&format!("template=hdars&key={ADMIN}")).await;
    let status = holtd.wait_terminal(&token, &format!("&key={ADMIN}")).await;
    assert_eq!(status, "Succeeded");
    let log = holtd.logs(&token, &format!("&key={ADMIN}")).await;
    assert!(log.contains("Deploying to HDARSV1"), "{log}");
    let reply = holtd
        .request(
            "POST",
            &format!("/api/jobs/cancel?token={token}"),
            &[("x-apikey", ADMIN)],
            "",
        )
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (409, "Succeeded"));
    // A wrong key is still refused, and a template's key opens only its own template.
    let reply = holtd
        .get(&format!("/api/jobs/status?token={token}&key=nope"))
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (403, "invalid API key")
    );
}

#[tokio::test]
async fn bad_listing_parameters_are_refused_in_one_line() {
    let holtd = admin_holtd(&[]).await;
    let cases = [
        ("limit=0", "limit must be a whole number from 1 to 1000"),
        ("limit=-1", "limit must be a whole number from 1 to 1000"),
        ("limit=1001", "limit must be a whole number from 1 to 1000"),
        (
            "limit=99999999999999999999999999",
            "limit must be a whole number from 1 to 1000",
        ),
        ("limit=ten", "limit must be a whole number from 1 to 1000"),
        (
            "status=succeeded",
            "status must be Pending, Executing, Succeeded, Warning or Error",
        ),
        ("before=007", "before must be a job token"),
        ("before=-3", "before must be a job token"),
        ("before=abc", "before must be a job token"),
        ("limit=1&limit=2", "parameter limit is given more than once"),
        ("templat=warns", "unknown parameter templat"),
    ];
    for (query, reason) in cases {
        let (status, body) = admin_get(&holtd, &format!("/api/jobs/list?{query}")).await;
        assert_eq!((status, body.as_str()), (400, reason), "{query}");
    }
    // A template name with quotes, markup or a newline is refused, its text kept to one line.
    for name in [
        "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "a%0Ab",
        "x%27y",
    ] {
        let (status, body) = admin_get(&holtd, &format!("/api/jobs/list?template={name}")).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.starts_with("invalid template name"), "{body}");
        assert!(!body.contains('\n'), "{body:?}");
    }
    let (status, body) = admin_get(&holtd, "/api/templates/list?x=1").await;
    assert_eq!((status, body.as_str()), (400, "unknown parameter x"));
}

#[tokio::test]
async fn templates_are_listed_with_their_rules_and_never_a_key_or_secret_default() {
    let declared = r#"
description = "Ships \"it\" <script>alert(1)</script>\non two lines"
allow_api = true
api_key = "template-key-value"
plan = 'Log-Information "hi";'
[variables.Environment]
required = true
allowed = ["test", "<b>prod</b>", "quote\"d"]
description = "Where </script> goes"
[variables.Password]
secret = true
default = "the-secret-default"
[variables.Release]
default = "1.0"
pattern = '^[0-9]+\.[0-9]+$'
"#;
    let holtd = admin_holtd(&[("declared", declared)]).await;
    let (status, body) = admin_get(&holtd, "/api/templates/list").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("template-key-value"), "{body}");
    assert!(!body.contains("secure123"), "{body}");
    assert!(!body.contains("the-secret-default"), "{body}");
    // Markup, quotes and newlines arrive JSON-escaped: the body is one line of valid JSON.
    assert!(!body.contains('\n'), "{body}");
    let all = json(&body);
    let names: Vec<&str> = all["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let t = all["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "declared")
        .unwrap();
    assert_eq!(
        t["description"],
        "Ships \"it\" <script>alert(1)</script>\non two lines"
    );
    assert_eq!(t["has_key"], true);
    assert_eq!(t["allow_api"], true);
    let var = |name: &str| {
        t["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    let env = var("Environment");
    assert_eq!(env["required"], true);
    assert_eq!(
        env["allowed"],
        serde_json::json!(["test", "<b>prod</b>", "quote\"d"])
    );
    assert_eq!(env["description"], "Where </script> goes");
    let password = var("Password");
    assert_eq!(password["secret"], true);
    assert_eq!(password["default"], serde_json::Value::Null);
    assert_eq!(password["has_default"], true);
    let release = var("Release");
    assert_eq!(release["default"], "1.0");
    assert_eq!(release["pattern"], r"^[0-9]+\.[0-9]+$");
    assert_eq!(t["targets"]["servers"], serde_json::json!([]));
}

/// While one task triggers jobs as fast as it can, another pages through the listing from the
/// newest job at its start: every job that existed then is listed exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_while_jobs_are_triggered_lists_each_job_once() {
    let holtd = admin_holtd(&[]).await;
    let mut before_start = BTreeSet::new();
    for _ in 0..30 {
        before_start.insert(
            holtd
                .trigger("template=ablast")
                .await
                .parse::<u64>()
                .unwrap(),
        );
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = holtd.addr;
    let triggering = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut made = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply =
                    holt_tests::request(addr, "GET", "/api/jobs/trigger?template=ablast", &[], "")
                        .await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                made += 1;
            }
            made
        })
    };
    let (_, body) = admin_get(&holtd, "/api/jobs/list?limit=1").await;
    let newest: u64 = tokens(&json(&body))[0].parse().unwrap();
    let mut listed = Vec::new();
    let mut before = Some((newest + 1).to_string());
    while let Some(bound) = before {
        let (status, body) =
            admin_get(&holtd, &format!("/api/jobs/list?limit=7&before={bound}")).await;
        assert_eq!(status, 200, "{body}");
        let page = json(&body);
        listed.extend(tokens(&page).into_iter().map(|t| t.parse::<u64>().unwrap()));
        before = page["next"].as_str().map(str::to_owned);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made_meanwhile = triggering.await.unwrap();
    assert!(made_meanwhile > 0, "nothing was triggered while paging");
    let mut expected: Vec<u64> = (1..=newest).rev().collect();
    expected.retain(|t| *t <= newest);
    assert_eq!(
        listed, expected,
        "every job up to the first page's newest, once, in order"
    );
    assert!(before_start.iter().all(|t| listed.contains(t)));
}
