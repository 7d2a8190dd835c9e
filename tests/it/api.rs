//! Every status code of every Otter endpoint, with GET and POST.

use holt_tests::Holtd;

use crate::templates;

async fn server() -> Holtd {
    Holtd::start(&templates::all(), &[]).await
}

#[track_caller]
fn check(reply: &holt_tests::Reply, status: u16, body: &str) {
    assert_eq!((reply.status, reply.body.as_str()), (status, body));
}

#[tokio::test]
async fn trigger_answers_with_the_token_only() {
    let holtd = server().await;
    let reply = holtd
        .get("/api/jobs/trigger?template=hdars&key=secure123")
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.parse::<u64>().is_ok(), "{:?}", reply.body);
    let reply = holtd
        .post_form("/api/jobs/trigger", "template=hdars&key=secure123")
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.parse::<u64>().is_ok(), "{:?}", reply.body);
    let reply = holtd
        .request("POST", "/api/jobs/trigger?template=ablast", &[], "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn trigger_refusals() {
    let holtd = server().await;
    for method in ["GET", "POST"] {
        let holtd = &holtd;
        let r = |q: &str| {
            let path = format!("/api/jobs/trigger{q}");
            async move { holtd.request(method, &path, &[], "").await }
        };
        check(&r("").await, 400, "missing template parameter");
        check(&r("?template=").await, 400, "missing template parameter");
        check(
            &r("?template=a/b").await,
            400,
            "invalid template name \"a/b\": use 1 to 100 letters, digits, '_', '-' or '.', starting with a letter or digit",
        );
        check(
            &r("?template=ablast&x=%zz").await,
            400,
            "malformed query string: invalid percent escape",
        );
        check(
            &r("?template=ablast&1x=y").await,
            400,
            "invalid variable name \"1x\": use up to 50 letters, digits, '_' or '-', starting with a letter",
        );
        check(
            &r("?template=ablast&A=1&a=2").await,
            400,
            "variable a is given more than once",
        );
        check(
            &r("?template=ablast&template=hdars").await,
            400,
            "parameter template is given more than once",
        );
        check(&r("?template=nope").await, 404, "no template named nope");
        check(
            &r("?template=noapi").await,
            403,
            "template noapi does not allow API use",
        );
        check(&r("?template=hdars").await, 403, "missing API key");
        check(
            &r("?template=hdars&key=wrong").await,
            403,
            "invalid API key",
        );
        check(&r("?template=hdars&key=").await, 403, "invalid API key");
    }
    // POST bodies are parsed too, and must be forms.
    check(
        &holtd
            .post_form("/api/jobs/trigger", "template=hdars&key=nope")
            .await,
        403,
        "invalid API key",
    );
    check(
        &holtd.post_form("/api/jobs/trigger", "key=secure123").await,
        400,
        "missing template parameter",
    );
    check(
        &holtd
            .post_form("/api/jobs/trigger?template=ablast", "a=%ff")
            .await,
        400,
        "malformed form body: not UTF-8",
    );
    check(
        &holtd
            .post_form(
                "/api/jobs/trigger?template=hdars",
                "template=hdars&key=secure123",
            )
            .await,
        400,
        "parameter template is given more than once",
    );
    let reply = holtd
        .request(
            "POST",
            "/api/jobs/trigger?template=ablast",
            &[("content-type", "text/xml")],
            "<a/>",
        )
        .await;
    check(
        &reply,
        415,
        "a request body must be application/x-www-form-urlencoded or application/json",
    );
}

#[tokio::test]
async fn keys_come_from_query_form_or_header() {
    let holtd = server().await;
    assert_eq!(
        holtd
            .get("/api/jobs/trigger?template=hdars&key=secure123")
            .await
            .status,
        200
    );
    assert_eq!(
        holtd
            .post_form("/api/jobs/trigger?template=hdars", "key=secure123")
            .await
            .status,
        200
    );
    let reply = holtd
        .request(
            "GET",
            "/api/jobs/trigger?template=hdars",
            &[("X-ApiKey", "secure123")],
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = holtd
        .request(
            "GET",
            "/api/jobs/trigger?template=hdars",
            &[("X-ApiKey", "wrong")],
            "",
        )
        .await;
    check(&reply, 403, "invalid API key");
    // The key parameter wins over the header.
    let reply = holtd
        .request(
            "GET",
            "/api/jobs/trigger?template=hdars&key=secure123",
            &[("X-ApiKey", "wrong")],
            "",
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn status_and_logs_answers_and_refusals() {
    let holtd = server().await;
    let keyed = holtd.trigger("template=hdars&key=secure123").await;
    let open = holtd.trigger("template=ablast").await;
    holtd.wait_terminal(&keyed, "&key=secure123").await;
    holtd.wait_terminal(&open, "").await;
    let holtd = &holtd;
    for endpoint in ["status", "logs"] {
        for method in ["GET", "POST"] {
            let r = |q: String| async move {
                let path = format!("/api/jobs/{endpoint}{q}");
                if method == "GET" {
                    holtd.get(&path).await
                } else {
                    holtd
                        .post_form(&format!("/api/jobs/{endpoint}"), q.trim_start_matches('?'))
                        .await
                }
            };
            check(&r(String::new()).await, 400, "missing token parameter");
            check(&r("?token=abc".into()).await, 400, "invalid token");
            check(&r("?token=007".into()).await, 400, "invalid token");
            check(&r("?token=999999".into()).await, 400, "unknown token");
            check(&r(format!("?token={keyed}")).await, 403, "missing API key");
            check(
                &r(format!("?token={keyed}&key=nope")).await,
                403,
                "invalid API key",
            );
            let ok = r(format!("?token={keyed}&key=secure123")).await;
            assert_eq!(ok.status, 200, "{endpoint} {method}: {}", ok.body);
            let expected = if endpoint == "status" {
                "Succeeded"
            } else {
                "DEBUG: Job started from template hdars.\nINFO: Deploying to HDARSV1\nINFO: Job succeeded.\n"
            };
            assert_eq!(ok.body, expected, "{endpoint} {method}");
            assert_eq!(r(format!("?token={open}")).await.status, 200);
        }
    }
    let reply = holtd
        .request(
            "GET",
            &format!("/api/jobs/status?token={keyed}"),
            &[("X-ApiKey", "secure123")],
            "",
        )
        .await;
    check(&reply, 200, "Succeeded");
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let holtd = server().await;
    check(&holtd.get("/api/jobs/nope").await, 404, "no such path");
    check(&holtd.get("/nope").await, 404, "no such path");
    // Without an admin key the web UI's pages say how to enable it.
    check(&holtd.get("/").await, 404, holt_http::UI_OFF);
    let reply = holtd
        .request("DELETE", "/api/jobs/trigger?template=ablast", &[], "")
        .await;
    check(&reply, 405, "method DELETE is not allowed here");
    assert_eq!(reply.header("allow"), Some("GET, POST"));
    let reply = holtd.request("PUT", "/api/jobs/status", &[], "").await;
    assert_eq!(reply.status, 405);
    check(&holtd.get("/healthz").await, 200, "ok");
    let reply = holtd.request("POST", "/healthz", &[], "").await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")));
}
