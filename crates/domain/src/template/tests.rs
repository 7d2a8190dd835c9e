use std::time::Duration;

use super::*;
use crate::JobStatus;

fn load(text: &str) -> Result<Template, TemplateError> {
    Template::from_toml("t".parse().unwrap(), text)
}

#[track_caller]
fn check_err(text: &str, expect: &str) {
    let err = load(text).expect_err("template was accepted");
    assert_eq!(err.to_string(), expect);
}

#[test]
fn reads_the_documented_format() {
    let t = load(
        r#"
description = "Deploy HDARS"
allow_api = true
api_key = "secure123"
plan = '''
Log-Information "Deploying to $TargetServer";
'''
[variables]
TargetServer = "HDARSV1"
Retries = 3
[variables.Password]
secret = true
default = "hunter2"
"#,
    )
    .unwrap();
    assert_eq!(t.description.as_deref(), Some("Deploy HDARS"));
    assert!(t.allow_api);
    assert!(t.api_key.as_ref().unwrap().verify("secure123"));
    assert_eq!(
        t.plan_source,
        "Log-Information \"Deploying to $TargetServer\";\n"
    );
    let defaults = t.defaults();
    assert_eq!(defaults.get("targetserver"), Some("HDARSV1"));
    assert_eq!(defaults.get("Retries"), Some("3"));
    assert_eq!(defaults.get("password"), Some("hunter2"));
    let secret: Vec<&str> = t
        .variables
        .iter()
        .filter(|d| d.secret)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(secret, ["Password"]);
}

#[test]
fn api_use_is_opt_in_and_keys_may_be_hashed() {
    let t = load("plan = 'Log-Information hi;'").unwrap();
    assert!(!t.allow_api);
    assert!(t.api_key.is_none());
    let t = load(
        "api_key_sha256 = \"0f1f60c6a2e0ad6ab7bc5fb8ab6e4a3c0e3b3bd3df5bb3a7e0b0b2d1c1d6b2c8\"\nplan = ''",
    )
    .unwrap();
    assert!(!t.api_key.unwrap().verify("secure123"));
}

#[test]
fn errors_name_line_and_column() {
    check_err(
        "plan = 'x'\nallow_api = 3\n",
        "2:13: invalid type: integer `3`, expected a boolean",
    );
    check_err(
        "plan = ''\nbogus = 1\n",
        "2:1: unknown field `bogus`, expected one of `description`, `allow_api`, `api_key`, `api_key_sha256`, `plan`, `variables`, `allow_undeclared_variables`, `max_concurrent`, `on_limit`, `timeout`, `retain_days`, `servers`, `roles`, `environments`, `parallel_servers`, `outputs`, `notify`, `schedule`, `schedule_timezone`, `missed`",
    );
    check_err(
        "plan = ''\napi_key = 'a'\napi_key_sha256 = 'b'\n",
        "2:11: give api_key or api_key_sha256, not both",
    );
    check_err(
        "plan = ''\napi_key_sha256 = 'abc'\n",
        "2:18: invalid api_key_sha256: expected 64 hexadecimal digits",
    );
    check_err(
        "plan = ''\n[variables]\n1bad = 'x'\n",
        "3:8: invalid variable name \"1bad\": use up to 50 letters, digits, '_' or '-', starting with a letter",
    );
    check_err(
        "plan = ''\n[variables]\nA = 'x'\na = 'y'\n",
        "4:5: variable a is declared twice (names ignore case)",
    );
    check_err(
        "plan = ''\n[variables]\nA = [1]\n",
        "3:5: variable A: expected a string, number or boolean, or a table",
    );
    let err = load("description = 'x'\n").unwrap_err();
    assert_eq!(err.diagnostics[0].message, "missing field `plan`");
}

#[test]
fn plan_errors_are_placed_in_the_file() {
    // A multi-line literal string: the plan's line 2 is the file's line 4.
    let err = load(
        "allow_api = true\nplan = '''\nLog-Information ok;\nLog-Information \"unterminated;\n'''\n",
    )
    .unwrap_err();
    let d = &err.diagnostics[0];
    assert_eq!((d.line, d.column), (4, 17), "{err}");
    // A one-line string: plan columns are shifted by where the string starts.
    let err = load("plan = 'Log-Information \"x'").unwrap_err();
    let d = &err.diagnostics[0];
    assert_eq!((d.line, d.column), (1, 25), "{err}");
}

#[test]
fn variable_tables_refuse_unknown_fields() {
    check_err(
        "plan = ''\n[variables.A]\nsecrett = true\n",
        "2:1: variable A: unknown field `secrett`, expected one of `default`, `secret`, `required`, `allowed`, `pattern`, `description`",
    );
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// Pieces of template files, so generated texts reach deep into the reader.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("allow_api = true\n".to_owned()),
            Just("api_key = \"k\"\n".to_owned()),
            Just("api_key_sha256 = \"00\"\n".to_owned()),
            Just("[variables]\n".to_owned()),
            Just("[variables.X]\n".to_owned()),
            Just("secret = true\n".to_owned()),
            "[a-zA-Z_]{1,8} = \"[^\"\\\\]{0,8}\"\n",
            "plan = '''\n[a-zA-Z$;\"{} \n-]{0,40}\n'''\n",
            "\\PC{0,20}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn fuzz_arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = load(&text);
        }

        #[test]
        fn fuzz_template_like_text_never_panics(pieces in prop::collection::vec(piece(), 0..8)) {
            let text: String = pieces.concat();
            if let Err(e) = load(&text) {
                for d in &e.diagnostics {
                    prop_assert!(d.line >= 1 && d.column >= 1, "{:?}", d);
                    prop_assert!(!d.message.contains('\n'), "{:?}", d);
                }
            }
        }
    }
}

#[test]
fn policies_and_declared_variables() {
    let t = load(
        r#"
plan = ''
max_concurrent = 2
on_limit = "skip_if_pending"
timeout = "30m"
retain_days = 7
allow_undeclared_variables = false
[variables.Environment]
required = true
allowed = ["test", "prod"]
[variables.Release]
default = "1.0.0"
pattern = '[0-9]+(\.[0-9]+)*'
description = "the version to deploy"
"#,
    )
    .unwrap();
    assert_eq!(t.max_concurrent, Some(2));
    assert_eq!(t.on_limit, OnLimit::SkipIfPending);
    assert_eq!(t.timeout, Some(Duration::from_secs(1800)));
    assert_eq!(t.retain_days, Some(7));
    let vars = |pairs: &[(&str, &str)]| -> Variables {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(t.check_variables(&vars(&[("environment", "prod")])), Ok(()));
    assert_eq!(
        t.check_variables(&vars(&[])),
        Err("variable Environment is required".into())
    );
    assert_eq!(
        t.check_variables(&vars(&[("Environment", "dev")])),
        Err("variable Environment must be one of: test, prod".into())
    );
    assert_eq!(
        t.check_variables(&vars(&[("Environment", "test"), ("Release", "1.0-beta")])),
        Err("variable Release must match the pattern [0-9]+(\\.[0-9]+)*".into())
    );
    assert_eq!(
        t.check_variables(&vars(&[("Environment", "test"), ("X", "1")])),
        Err("variable X is not declared by template t".into())
    );
    check_err(
        "plan = ''\ntimeout = 'soon'\n",
        "2:11: timeout must be a duration like \"90s\", \"30m\" or \"2h\": expected number at 0",
    );
    check_err(
        "plan = ''\non_limit = 'drop'\n",
        "2:12: unknown variant `drop`, expected one of `queue`, `reject`, `skip_if_pending`",
    );
    check_err(
        "plan = ''\n[variables.A]\npattern = '('\n",
        "2:1: variable A: invalid pattern: error: unclosed group",
    );
    check_err(
        "plan = ''\n[variables.A]\ndefault = 'x'\nallowed = ['y']\n",
        "2:1: the default breaks its own rule: variable A must be one of: y",
    );
}

fn vars(pairs: &[(&str, &str)]) -> Variables {
    pairs
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), (*v).to_owned()))
        .collect()
}

#[test]
fn built_in_variables_cannot_be_given_or_declared() {
    let t = load("plan = ''\n").unwrap();
    for name in ["JobToken", "jobtoken", "EXECUTIONSTATE", "ExecutionState"] {
        let err = t
            .check_variables(&vars(&[(name, "/../../victim")]))
            .unwrap_err();
        assert_eq!(
            err,
            format!("variable {name} is built in: only the engine sets it, a trigger cannot")
        );
    }
    assert_eq!(t.check_variables(&vars(&[("JobTokens", "x")])), Ok(()));
    check_err(
        "plan = ''\n[variables]\njobToken = 'x'\n",
        "3:12: variable jobToken is built in: only the engine sets it, a template cannot declare it",
    );
    check_err(
        "plan = ''\n[variables.ExecutionState]\ndefault = 'normal'\n",
        "2:1: variable ExecutionState is built in: only the engine sets it, a template cannot declare it",
    );
}

#[test]
fn secrets_too_short_to_mask_are_refused() {
    let t = load("plan = ''\n[variables.Password]\nsecret = true\n").unwrap();
    for short in ["a", "ab", "abc", "é€x"] {
        assert_eq!(
            t.check_variables(&vars(&[("password", short)])),
            Err(
                "variable Password is secret and must be empty or at least 4 characters long"
                    .into()
            ),
            "{short:?}"
        );
    }
    for fine in ["", "abcd", "hunter2"] {
        assert_eq!(t.check_variables(&vars(&[("Password", fine)])), Ok(()));
    }
    // A value that is not secret may be short.
    let t = load("plan = ''\n[variables.Pin]\ndefault = 'abcd'\n").unwrap();
    assert_eq!(t.check_variables(&vars(&[("Pin", "1")])), Ok(()));
    check_err(
        "plan = ''\n[variables.Password]\nsecret = true\ndefault = 'pw'\n",
        "2:1: the default breaks its own rule: variable Password is secret and must be empty or at least 4 characters long",
    );
}

#[test]
fn targets_are_names_of_the_inventory() {
    let t = load("plan = ''\nroles = ['web']\nenvironments = ['prod']\nparallel_servers = 2\n")
        .unwrap();
    assert_eq!(t.targets.roles[0].as_str(), "web");
    assert_eq!(t.targets.environments[0].as_str(), "prod");
    assert!(t.targets.servers.is_empty());
    assert_eq!(t.parallel_servers, 2);
    let t = load("plan = ''").unwrap();
    assert!(t.targets.is_empty());
    assert_eq!(t.parallel_servers, 1);
    let err = load("plan = ''\nservers = ['-web']\nparallel_servers = 0\n").unwrap_err();
    let messages: Vec<_> = err.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("parallel_servers must be at least 1"))
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("servers: ") && m.contains("-web"))
    );
}

#[test]
fn reads_outputs_and_notify_tables() {
    let t = load(
        r#"
plan = "set $Version = 1;"
outputs = ["Version", "ArtifactUrl"]
[[notify]]
url = "https://hooks.example.com/holt?k=1"
on = ["Error", "Succeeded"]
secret_env = "HOLT_HOOK_KEY"
[[notify]]
url = "http://127.0.0.1:9000/"
"#,
    )
    .unwrap();
    let names: Vec<_> = t.outputs.iter().map(|n| n.as_str()).collect();
    assert_eq!(names, ["Version", "ArtifactUrl"]);
    assert_eq!(t.notify.len(), 2);
    assert_eq!(t.notify[0].on, [JobStatus::Error, JobStatus::Succeeded]);
    assert_eq!(t.notify[0].secret_env.as_deref(), Some("HOLT_HOOK_KEY"));
    assert_eq!(
        t.notify[1].on,
        [JobStatus::Succeeded, JobStatus::Warning, JobStatus::Error]
    );
    assert_eq!(t.notify[1].secret_env, None);
}

#[test]
fn refuses_secret_built_in_and_repeated_outputs() {
    check_err(
        "plan = \"\"\noutputs = [\"Token\"]\n[variables.Token]\nsecret = true\n",
        "2:12: output Token is a secret variable: a secret cannot be an output",
    );
    check_err(
        "plan = \"\"\noutputs = [\"JobToken\"]\n",
        "2:12: output JobToken is a built-in variable",
    );
    check_err(
        "plan = \"\"\noutputs = [\"a\", \"A\"]\n",
        "2:17: output A is declared twice (names ignore case)",
    );
    check_err(
        "plan = \"\"\noutputs = [\"1a\"]\n",
        "2:12: outputs: invalid variable name \"1a\": use up to 50 letters, digits, '_' or '-', starting with a letter",
    );
}

#[test]
fn refuses_bad_notify_tables() {
    check_err(
        "plan = \"\"\n[[notify]]\nurl = \"ftp://h/\"\n",
        "3:7: notify: url must start with http:// or https://",
    );
    check_err(
        "plan = \"\"\n[[notify]]\nurl = \"http://h/\"\non = [\"Pending\"]\n",
        "4:7: notify: on must list Succeeded, Warning or Error, not \"Pending\"",
    );
    check_err(
        "plan = \"\"\n[[notify]]\nurl = \"http://h/\"\nsecret_env = \"A-B\"\n",
        "4:14: notify: secret_env must name an environment variable (letters, digits, _)",
    );
    let err = load("plan = \"\"\n[[notify]]\nurl = \"http://h/\"\nheaders = 1\n").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn schedules_are_read_with_their_zone_and_missed_policy() {
    let t = load("plan = ''\n").unwrap();
    assert!(t.schedule.is_none());
    let t = load(
        "plan = ''\nschedule = '0 2 * * *'\nschedule_timezone = 'Europe/Berlin'\nmissed = 'run_once'\n",
    )
    .unwrap();
    let schedule = t.schedule.unwrap();
    assert_eq!(schedule.expression(), "0 2 * * *");
    assert_eq!(schedule.zone(), "Europe/Berlin");
    assert_eq!(schedule.missed(), crate::Missed::RunOnce);
    let t = load("plan = ''\nschedule = '@hourly'\n").unwrap();
    let schedule = t.schedule.unwrap();
    assert_eq!(schedule.zone(), "UTC");
    assert_eq!(schedule.missed(), crate::Missed::Skip);
}

#[test]
fn schedule_mistakes_are_placed_in_the_file() {
    check_err(
        "plan = ''\nschedule = '* * *'\n",
        "2:12: schedule must have 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; found 3",
    );
    check_err(
        "plan = ''\nschedule = '@daily'\nschedule_timezone = 'Berlin'\n",
        "3:21: schedule_timezone \"Berlin\" is not an IANA time zone name (such as Europe/Berlin)",
    );
    check_err(
        "plan = ''\nschedule_timezone = 'UTC'\nmissed = 'skip'\n",
        "2:21: schedule_timezone needs a schedule\n3:10: missed needs a schedule",
    );
    let err = load("plan = ''\nschedule = '@daily'\nmissed = 'twice'\n").unwrap_err();
    assert!(
        err.to_string().starts_with("3:10: unknown variant `twice`"),
        "{err}"
    );
    check_err(
        "plan = ''\nschedule = '@daily'\n[variables.Target]\nrequired = true\n",
        "2:12: variable Target is required but has no default, and a scheduled job gets no variables",
    );
    // With a default, a required variable is fine.
    load("plan = ''\nschedule = '@daily'\n[variables.Target]\nrequired = true\ndefault = 'a'\n")
        .unwrap();
}

#[test]
fn scheduled_for_is_built_in() {
    let t = load("plan = ''\n").unwrap();
    assert!(
        t.check_variables(&vars(&[("ScheduledFor", "2026-01-01T00:00:00Z")]))
            .is_err()
    );
    check_err(
        "plan = ''\n[variables]\nscheduledfor = 'x'\n",
        "3:16: variable scheduledfor is built in: only the engine sets it, a template cannot declare it",
    );
}
