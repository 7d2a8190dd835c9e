//! A hostile caller against a real holtd: values that evaluate themselves, values in every
//! quoting context of a script, forged built-in variables, secrets too short to mask, and the
//! example deployment attacked through its variables.

use std::path::Path;

use crate::plans::url_encode;
use crate::templates::with_plan as template;
use holt_tests::Holtd;

#[tokio::test]
async fn a_value_that_evals_itself_fails_its_job_and_the_server_lives_on() {
    let mut holtd = Holtd::start(
        &[
            ("eval", &template("Log-Information $Eval($x);")),
            ("ok", &template("Log-Information fine;")),
        ],
        &[],
    )
    .await;
    let token = holtd
        .trigger(&format!("template=eval&x={}", url_encode("$Eval($x)")))
        .await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    let log = holtd.logs(&token, "").await;
    assert!(
        log.contains("ERROR: $Eval nesting exceeds its limit of 32\n"),
        "{log}"
    );
    // The server still answers, and runs other jobs.
    let other = holtd.trigger("template=ok").await;
    assert_eq!(holtd.wait_terminal(&other, "").await, "Succeeded");
    // A job that was left pending when the server stopped runs after the restart and fails the
    // same way; the server keeps answering.
    let again = holtd
        .trigger(&format!("template=eval&x={}", url_encode("$Eval($x)")))
        .await;
    holtd.kill9();
    holtd.restart().await;
    assert_eq!(holtd.wait_terminal(&again, "").await, "Error");
    assert_eq!(holtd.status(&token, "").await, "Error");
    let after = holtd.trigger("template=ok").await;
    assert_eq!(holtd.wait_terminal(&after, "").await, "Succeeded");
}

#[tokio::test]
async fn script_values_are_data_in_every_quoting_context() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let p = x.display();
    let values = [
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        format!("'; touch {p}; '"),
        format!("\"; touch {p}; \""),
        "\\".to_owned(),
        format!("\nEOF\ntouch {p}"),
        "$HOME".to_owned(),
        "*".to_owned(),
        "a b".to_owned(),
    ];
    let contexts = [
        ("bare", "SHExec >>printf '[%s]`n' $v>>;"),
        ("double", "SHExec >>printf '%s`n' \"[$v]\">>;"),
        ("single", "SHExec >>printf '%s`n' '[$v]'>>;"),
        ("heredoc", "SHExec >>cat <<EOF\n[$v]\nEOF\n>>;"),
        ("heredoctabs", "SHExec >>cat <<-EOF\n\t[$v]\n\tEOF\n>>;"),
        (
            "substitution",
            "SHExec >>printf '[%s]`n' \"`$(printf '%s' $v)\">>;",
        ),
        (
            "backticks",
            "SHExec >>printf '[%s]`n' \"``printf '%s' $v``\">>;",
        ),
        ("exec", "Exec printf (Arguments: '\"[%s]`n\" $v');"),
    ];
    let templates: Vec<(&str, String)> = contexts.iter().map(|(n, p)| (*n, template(p))).collect();
    let refs: Vec<(&str, &str)> = templates.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let holtd = Holtd::start(&refs, &["--max-concurrent-jobs", "16"]).await;
    for value in &values {
        let form = url_encode(value);
        let mut tokens = Vec::new();
        for (name, _) in &contexts {
            // Once in the query string, once in a form body.
            tokens.push((
                *name,
                holtd.trigger(&format!("template={name}&v={form}")).await,
            ));
            let reply = holtd
                .post_form(
                    &format!("/api/jobs/trigger?template={name}"),
                    &format!("v={form}"),
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            tokens.push((*name, reply.body));
        }
        let printed: String = format!("[{value}]")
            .split('\n')
            .map(|l| format!("INFO: {l}\n"))
            .collect();
        for (name, token) in tokens {
            assert_eq!(
                holtd.wait_terminal(&token, "").await,
                "Succeeded",
                "{name} with {value:?}"
            );
            let log = holtd.logs(&token, "").await;
            assert!(log.contains(&printed), "{name} with {value:?}:\n{log}");
        }
        assert!(!x.exists(), "{value:?} ran a command");
    }
    // A value in a quoted heredoc is refused rather than passed on unexpanded.
    let quoted = template("SHExec >>cat <<'EOF'\n$v\nEOF\n>>;");
    drop(holtd);
    let holtd = Holtd::start(&[("quoted", &quoted)], &[]).await;
    let token = holtd.trigger("template=quoted&v=x").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Error");
    assert!(
        holtd
            .logs(&token, "")
            .await
            .contains("ERROR: SHExec: a value cannot be interpolated into a quoted heredoc")
    );
}

#[tokio::test]
async fn built_in_variables_and_short_secrets_are_refused_with_400() {
    let secret = "allow_api = true\nplan = 'Log-Information \"$JobToken $Password\";'\n[variables.Password]\nsecret = true\ndefault = \"long-enough\"\n";
    let holtd = Holtd::start(&[("t", secret)], &[]).await;
    for (pair, name) in [
        ("JobToken=%2F..%2F..%2Fvictim", "JobToken"),
        ("jobtoken=x", "jobtoken"),
        ("ExecutionState=normal", "ExecutionState"),
    ] {
        let reply = holtd
            .get(&format!("/api/jobs/trigger?template=t&{pair}"))
            .await;
        assert_eq!(reply.status, 400, "{pair}: {}", reply.body);
        assert!(
            reply.body.contains(&format!("variable {name} is built in")),
            "{}",
            reply.body
        );
        assert_eq!(reply.body.trim_end().lines().count(), 1, "{}", reply.body);
        let reply = holtd.post_form("/api/jobs/trigger?template=t", pair).await;
        assert_eq!(reply.status, 400, "{pair}: {}", reply.body);
    }
    for short in ["a", "ab", "abc"] {
        let reply = holtd
            .get(&format!("/api/jobs/trigger?template=t&Password={short}"))
            .await;
        assert_eq!(reply.status, 400, "{short}: {}", reply.body);
        assert!(
            reply.body.contains(
                "variable Password is secret and must be empty or at least 4 characters long"
            ),
            "{}",
            reply.body
        );
    }
    let token = holtd.trigger("template=t&Password=abcd").await;
    assert_eq!(holtd.wait_terminal(&token, "").await, "Succeeded");
    assert!(
        holtd
            .logs(&token, "")
            .await
            .contains(&format!("INFO: {token} ***\n"))
    );
}

#[tokio::test]
async fn the_example_deployment_cannot_be_turned_against_its_host() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/templates");
    let deploy = std::fs::read_to_string(examples.join("deploy-webapp.toml")).unwrap();
    let holtd = Holtd::start(&[("deploy-webapp", &deploy)], &[]).await;
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let victim = root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep"), "precious").unwrap();
    let workroot = url_encode(&work.display().to_string());
    let attacks = [
        format!("JobToken={}", url_encode("/../../victim")),
        format!("JobToken={}", url_encode("../victim")),
        format!(
            "WorkRoot={}",
            url_encode(&format!("{}/../victim", work.display()))
        ),
        format!(
            "WorkRoot={}",
            url_encode(&victim.display().to_string()) + "%20-rf"
        ),
        format!("WorkRoot={workroot}&Version={}", url_encode("../../victim")),
        format!(
            "WorkRoot={workroot}&Application={}",
            url_encode("a b/../../victim")
        ),
        format!("WorkRoot={workroot}&Version={}", url_encode("$(rm -rf x)")),
        format!(
            "WorkRoot={workroot}&Work={}",
            url_encode(&victim.display().to_string())
        ),
    ];
    for attack in &attacks {
        let reply = holtd
            .get(&format!(
                "/api/jobs/trigger?template=deploy-webapp&key=deploy-key&{attack}"
            ))
            .await;
        assert_eq!(reply.status, 400, "{attack}: {}", reply.body);
        assert!(
            reply.body.starts_with("variable "),
            "{attack}: {}",
            reply.body
        );
    }
    // What is allowed runs in its own directory below the work root and removes only that.
    let token = holtd
        .trigger(&format!(
            "template=deploy-webapp&key=deploy-key&WorkRoot={workroot}&Version=2.4.1-rc.1&Application=shop_front"
        ))
        .await;
    assert_eq!(
        holtd.wait_terminal(&token, "&key=deploy-key").await,
        "Succeeded"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("keep")).unwrap(),
        "precious"
    );
    assert!(work.exists());
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}
