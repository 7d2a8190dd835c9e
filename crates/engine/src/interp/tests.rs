//! The execution-state rules, each as a plan with its exact log body and final status, run
//! through the engine against a real SQLite file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use holt_domain::{
    JobStatus, JobToken, LogEntry, Template, TemplateCatalog, Variables, format_entry,
};
use holt_storage::{SqliteConfig, SqliteStore};

use crate::{Engine, EngineConfig, check_plan};

/// A started engine with one template, `t`, whose plan is `plan`.
async fn engine_with(plan: &str) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("holt.db"))).unwrap();
    let toml = format!("allow_api = true\nplan = '''\n{plan}\n'''\n");
    let template = Template::from_toml("t".parse().unwrap(), &toml)
        .unwrap_or_else(|e| panic!("template does not load: {e}"));
    let problems = check_plan(&template.plan);
    assert!(problems.is_empty(), "{problems:?}");
    let engine = Engine::start(
        Arc::new(store),
        TemplateCatalog::new([template]),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    (dir, engine)
}

/// The job's final status: the engine's own wait, woken when the job ends.
async fn wait_terminal(engine: &Engine, token: JobToken) -> JobStatus {
    let status = engine
        .wait(token, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(status.is_terminal(), "job still {status}");
    status
}

/// Runs `plan` as a job and returns its final status and log entries.
async fn run_entries(plan: &str, vars: &[(&str, &str)]) -> (JobStatus, Vec<LogEntry>) {
    let (_dir, engine) = engine_with(plan).await;
    let template = engine
        .templates()
        .get(&"t".parse().unwrap())
        .unwrap()
        .clone();
    let vars: Variables = vars
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), (*v).to_owned()))
        .collect();
    let token = engine
        .trigger(&template, &vars, None)
        .await
        .unwrap()
        .token();
    let status = wait_terminal(&engine, token).await;
    let entries = engine.store().logs(token, 0, 10_000).await.unwrap();
    (status, entries)
}

/// Runs `plan` as a job on runtime threads with the stack holtd gives them (which deep plans
/// need in a debug build) and returns its final status and log entries.
pub(super) fn run_plan(plan: &str, vars: &[(&str, &str)]) -> (JobStatus, Vec<LogEntry>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(crate::WORKER_STACK_BYTES)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run_entries(plan, vars))
}

/// A log body in the Otter text form, without the engine's first and last lines.
pub(super) fn body_of(entries: &[LogEntry]) -> String {
    let mut body = String::new();
    for entry in &entries[1..entries.len() - 1] {
        format_entry(&mut body, entry);
    }
    body
}

/// Runs `plan` as a job and returns its final status and its log body without the engine's
/// first and last lines.
pub(super) fn run_body(plan: &str, vars: &[(&str, &str)]) -> (JobStatus, String) {
    let (status, entries) = run_plan(plan, vars);
    (status, body_of(&entries))
}

/// Checks a plan's log body (without the engine's first and last lines) and final status.
#[track_caller]
fn check(plan: &str, expect_body: &str, expect_status: JobStatus) {
    check_with(plan, &[], expect_body, expect_status);
}

#[track_caller]
fn check_with(plan: &str, vars: &[(&str, &str)], expect_body: &str, expect_status: JobStatus) {
    let (status, entries) = run_plan(plan, vars);
    let body = body_of(&entries);
    assert_eq!(body, expect_body, "plan:\n{plan}");
    assert_eq!(status, expect_status, "plan:\n{plan}");
    assert_eq!(entries[0].text, "Job started from template t.");
    let last = &entries[entries.len() - 1].text;
    let expected_last = match status {
        JobStatus::Succeeded => "Job succeeded.",
        JobStatus::Warning => "Job completed with warnings.",
        _ => "Job failed.",
    };
    assert_eq!(last, expected_last);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (0..entries.len() as u64).collect::<Vec<_>>(),
        "sequence numbers have gaps"
    );
}

#[test]
fn log_levels_set_the_state() {
    check(
        "Log-Debug d;\nLog-Information i;",
        "DEBUG: d\nINFO: i\n",
        JobStatus::Succeeded,
    );
    check(
        "Log-Warning w;\nLog-Information i;",
        "WARN: w\nINFO: i\n",
        JobStatus::Warning,
    );
    // Log-Error does not stop the plan.
    check(
        "Log-Error e;\nLog-Information i;\nLog-Warning w;",
        "ERROR: e\nINFO: i\nWARN: w\n",
        JobStatus::Error,
    );
    check(
        "Log-Information (Text: named);",
        "INFO: named\n",
        JobStatus::Succeeded,
    );
    check(
        "Log-Information \"two`nlines\";",
        "INFO: two\nINFO: lines\n",
        JobStatus::Succeeded,
    );
}

#[test]
fn variables_and_interpolation() {
    check(
        "set $x = world;\nLog-Information \"hello $x and ${X}!\";\nset @l = @(a, b);\nLog-Information \"$(@l[1]) of $Count(@l)\";",
        "INFO: hello world and world!\nINFO: b of 2\n",
        JobStatus::Succeeded,
    );
    check_with(
        "Log-Information \"to $TargetServer\";",
        &[("targetserver", "web 1; rm -rf /")],
        "INFO: to web 1; rm -rf /\n",
        JobStatus::Succeeded,
    );
    check(
        "set %m = %(k: v, other: w);\nLog-Information \"%m[k]=$(%m[k]) $ToUpper(abc) $ToLower(ABC) [$Trim(\"  x  \")]\";",
        "INFO: %m[k]=v ABC abc [x]\n",
        JobStatus::Succeeded,
    );
    check(
        "Log-Information $JobToken;",
        "INFO: 1\n",
        JobStatus::Succeeded,
    );
    check(
        "set $v = 1;\nLog-Information \"$IsVariableDefined(v) $IsVariableDefined(w)\";",
        "INFO: true false\n",
        JobStatus::Succeeded,
    );
    check(
        "set $x = y;\nLog-Information $Eval(\"`$x is $x\");",
        "INFO: y is y\n",
        JobStatus::Succeeded,
    );
}

#[test]
fn unknown_variables_are_runtime_errors_naming_the_variable() {
    check(
        "Log-Information \"a $nope b\";\nLog-Information after;",
        "ERROR: variable $nope is not defined\n",
        JobStatus::Error,
    );
}

#[test]
fn a_variable_shadows_a_function() {
    check(
        "set $ToUpper = mine;\nLog-Information $ToUpper;",
        "INFO: mine\n",
        JobStatus::Succeeded,
    );
}

#[test]
fn execution_state_statements() {
    check(
        "warn;\nLog-Information $ExecutionState;",
        "INFO: warning\n",
        JobStatus::Warning,
    );
    check(
        "error;\nwarn;\nLog-Information $ExecutionState;",
        "INFO: error\n",
        JobStatus::Error,
    );
    check("error;\nforce warn;", "", JobStatus::Warning);
    check(
        "Log-Error e;\nforce normal;",
        "ERROR: e\n",
        JobStatus::Succeeded,
    );
    check("fail;\nLog-Information never;", "", JobStatus::Error);
    check(
        "throw boom;\nLog-Information never;",
        "ERROR: boom\n",
        JobStatus::Error,
    );
    check("throw;", "ERROR: An error was thrown.\n", JobStatus::Error);
}

#[test]
fn try_catch() {
    check(
        "try { throw boom; } catch { warn; }",
        "ERROR: boom\n",
        JobStatus::Warning,
    );
    check(
        "try { throw boom; } catch { }\nLog-Information after;",
        "ERROR: boom\nINFO: after\n",
        JobStatus::Succeeded,
    );
    // A warning logged before the error stands.
    check(
        "try { Log-Warning w; throw boom; } catch { }",
        "WARN: w\nERROR: boom\n",
        JobStatus::Warning,
    );
    // The catch decides the state.
    check(
        "try { throw boom; } catch { error; }\nLog-Information after;",
        "ERROR: boom\nINFO: after\n",
        JobStatus::Error,
    );
    // fail is not caught.
    check(
        "try { fail; } catch { force normal; }\nLog-Information never;",
        "",
        JobStatus::Error,
    );
    // An error raised in the catch propagates.
    check(
        "try { throw one; } catch { throw two; }\nLog-Information never;",
        "ERROR: one\nERROR: two\n",
        JobStatus::Error,
    );
    // Nested try: the inner one catches.
    check(
        "try { try { throw in; } catch { Log-Information caught; } throw out; } catch { Log-Information outer; }",
        "ERROR: in\nINFO: caught\nERROR: out\nINFO: outer\n",
        JobStatus::Succeeded,
    );
}

#[test]
fn retry_reruns_with_state_reset_and_keeps_earlier_lines() {
    check(
        "set global $tries = 0;\n\
         with retry=2 {\n\
           if $tries == 0 { set global $tries = 1; throw first; }\n\
           if $tries == 1 { set global $tries = 2; throw second; }\n\
           Log-Information third;\n\
         }",
        "ERROR: first\nDEBUG: Retrying (attempt 2 of 3).\nERROR: second\nDEBUG: Retrying (attempt 3 of 3).\nINFO: third\n",
        JobStatus::Succeeded,
    );
    check(
        "with retry=1 { Log-Information try; throw no; }\nLog-Information never;",
        "INFO: try\nERROR: no\nDEBUG: Retrying (attempt 2 of 2).\nINFO: try\nERROR: no\n",
        JobStatus::Error,
    );
}

#[test]
fn timeout_cancels_the_block_and_raises_there() {
    let started = Instant::now();
    check(
        "try { with timeout=0.2 { Log-Information start; Sleep 30; Log-Information never; } } catch { Log-Information caught; }\nerror;",
        "INFO: start\nERROR: Timeout of 0.2 seconds elapsed.\nINFO: caught\n",
        JobStatus::Error,
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn async_blocks_run_concurrently_and_log_in_time_order() {
    check(
        "with async { Sleep 0.4; Log-Information slow; }\nwith async { Sleep 0.1; Log-Information fast; }\nLog-Information main;\nawait;\nLog-Information done;",
        "INFO: main\nINFO: fast\nINFO: slow\nINFO: done\n",
        JobStatus::Succeeded,
    );
    // The end of the plan awaits, and brings warnings home.
    check(
        "with async { Sleep 0.1; Log-Warning late; }",
        "WARN: late\n",
        JobStatus::Warning,
    );
    // Assignments on the copy do not flow back; globals do.
    check(
        "set $local = before;\nset global $shared = before;\nwith async { set $local = after; set global $shared = after; }\nawait;\nLog-Information \"$local $shared\";",
        "INFO: before after\n",
        JobStatus::Succeeded,
    );
    // Await by name waits for that block only.
    check(
        "with async=slow { Sleep 0.3; Log-Information slow; }\nwith async=fast { Sleep 0.05; Log-Information fast; }\nawait fast;\nLog-Information between;",
        "INFO: fast\nINFO: between\nINFO: slow\n",
        JobStatus::Succeeded,
    );
}

#[test]
fn async_errors_surface_where_the_block_began() {
    check(
        "try { with async { Sleep 0.05; throw inner; } Log-Information main; } catch { Log-Information caught; }\nLog-Information after;",
        "INFO: main\nERROR: inner\nINFO: caught\nINFO: after\n",
        JobStatus::Succeeded,
    );
    check(
        "with async { throw inner; }\nawait;\nLog-Information never;",
        "ERROR: inner\n",
        JobStatus::Error,
    );
}

#[test]
fn lock_serialises_blocks_with_the_same_name() {
    check(
        "with async, lock=l { Log-Information a1; Sleep 0.3; Log-Information a2; }\nwith async { Sleep 0.1; with lock=L { Log-Information b1; Log-Information b2; } }",
        "INFO: a1\nINFO: a2\nINFO: b1\nINFO: b2\n",
        JobStatus::Succeeded,
    );
}

#[test]
fn conditionals_and_loops() {
    check(
        "set $x = abc;\nif $x == abc && !false { Log-Information yes; } else { Log-Information no; }\nif $x != abc { Log-Information a; } else if $x == abc { Log-Information b; } else { Log-Information c; }\nif TRUE { Log-Information bare; }",
        "INFO: yes\nINFO: b\nINFO: bare\n",
        JobStatus::Succeeded,
    );
    check(
        "foreach $i in @Range(1, 5) { if $i == 2 { continue; } if $i == 4 { break; } Log-Information $i; }",
        "INFO: 1\nINFO: 3\n",
        JobStatus::Succeeded,
    );
    check(
        "foreach $i in @(a, b) { Log-Information $i; return; }\nLog-Information never;",
        "INFO: a\n",
        JobStatus::Succeeded,
    );
}

#[test]
fn modules() {
    check(
        "module Greet<$who, $greeting = Hello> { Log-Information \"$greeting, $who\"; }\ncall Greet(who: you);\ncall Greet(who: me, greeting: Hi);",
        "INFO: Hello, you\nINFO: Hi, me\n",
        JobStatus::Succeeded,
    );
    check(
        "module M<$a> { Log-Information $a; }\ncall M();",
        "ERROR: module M: missing argument $a\n",
        JobStatus::Error,
    );
    check(
        "module M { set $x = inner; return; Log-Information never; }\nset $x = outer;\ncall M();\nLog-Information $x;",
        "INFO: outer\n",
        JobStatus::Succeeded,
    );
    check(
        "module R { call R(); }\ncall R();",
        "ERROR: module call nesting exceeds its limit of 64\n",
        JobStatus::Error,
    );
}

#[test]
fn sleep_refuses_bad_durations() {
    check(
        "Sleep soon;",
        "ERROR: Sleep needs a number of seconds, found \"soon\"\n",
        JobStatus::Error,
    );
    check(
        "Sleep -1;",
        "ERROR: Sleep needs between 0 and 31536000 seconds, found \"-1\"\n",
        JobStatus::Error,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_record_their_scope_path() {
    let (_, entries) = run_entries(
        "# Deploy\n{\n    Log-Information a;\n    # Copy files\n    Log-Information b;\n    foreach $s in @(web1, web2) { Log-Information $s; }\n}\nLog-Information root;",
        &[],
    )
    .await;
    let scopes: Vec<(String, Vec<String>)> = entries
        .iter()
        .map(|e| {
            (
                e.text.clone(),
                e.scope.segments().iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(scopes[1], ("a".into(), s(&["Deploy"])));
    assert_eq!(scopes[2], ("b".into(), s(&["Deploy", "Copy files"])));
    assert_eq!(scopes[3], ("web1".into(), s(&["Deploy", "$s = web1"])));
    assert_eq!(scopes[4], ("web2".into(), s(&["Deploy", "$s = web2"])));
    assert_eq!(scopes[5], ("root".into(), s(&[])));
}

#[test]
fn secrets_are_masked() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("holt.db"))).unwrap();
        let toml = "allow_api = true\nplan = 'Log-Information \"pw=$Password, again $Password\";'\n[variables.Password]\nsecret = true\ndefault = \"hunter2\"\n";
        let template = Template::from_toml("t".parse().unwrap(), toml).unwrap();
        let engine = Engine::start(Arc::new(store), TemplateCatalog::new([template]), EngineConfig::default()).await.unwrap();
        let template = engine.templates().get(&"t".parse().unwrap()).unwrap().clone();
        for (vars, expected) in [(Variables::new(), "pw=***, again ***"), ([("password".parse().unwrap(), "s3cr3t".to_owned())].into_iter().collect(), "pw=***, again ***")] {
            let token = engine.trigger(&template, &vars, None).await.unwrap().token();
            wait_terminal(&engine, token).await;
            let entries = engine.store().logs(token, 0, 100).await.unwrap();
            assert_eq!(entries[1].text, expected);
        }
    });
}

#[track_caller]
fn check_rejected(plan: &str, expect: &str) {
    let parsed = holt_plan::parse(plan).unwrap_or_else(|e| panic!("does not parse: {e}"));
    let found: Vec<String> = check_plan(&parsed)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found.join("\n"), expect);
}

#[test]
fn the_loader_rejects_what_the_engine_cannot_run() {
    check_rejected(
        "Frobnicate;",
        "line 1, column 1: unknown operation `Frobnicate`",
    );
    check_rejected(
        "Other::Sleep 1;",
        "line 1, column 1: unknown operation `Other::Sleep`",
    );
    check_rejected("InedoCore::Sleep 1;\nlog-information x;", "");
    check_rejected(
        "Sleep 1 (Minutes: 2);",
        "line 1, column 1: operation `Sleep` has no argument `Minutes`",
    );
    check_rejected("break;", "line 1, column 1: `break` outside a foreach loop");
    check_rejected("call Nope();", "line 1, column 1: unknown module `Nope`");
    check_rejected(
        "with isolation { }",
        "line 1, column 6: `with isolation` is not supported by Holt",
    );
    check_rejected(
        "for directory /tmp {\n  Bad;\n}",
        "line 1, column 1: `for directory` is not supported by Holt\nline 2, column 3: unknown operation `Bad`",
    );
    check_rejected(
        "for server web1 {\n  Bad;\n}",
        "line 2, column 3: unknown operation `Bad`",
    );
}

mod hostile;
mod model;
mod processes;
