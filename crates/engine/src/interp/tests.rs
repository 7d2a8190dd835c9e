//! The execution-state rules, each as a plan with its exact log body and final status, run
//! through the engine against a real SQLite file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use holt_domain::{
    JobStatus, JobToken, LogEntry, Template, TemplateCatalog, Variables, format_entry,
};
use holt_storage::{JobStore, SqliteConfig, SqliteStore};

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

async fn wait_terminal(store: &Arc<dyn JobStore>, token: JobToken) -> JobStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = store.status(token).await.unwrap().unwrap();
        if status.is_terminal() {
            return status;
        }
        assert!(Instant::now() < deadline, "job still {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let status = wait_terminal(engine.store(), token).await;
    let entries = engine.store().logs(token, 0, 10_000).await.unwrap();
    (status, entries)
}

/// Checks a plan's log body (without the engine's first and last lines) and final status.
#[track_caller]
fn check(plan: &str, expect_body: &str, expect_status: JobStatus) {
    check_with(plan, &[], expect_body, expect_status);
}

#[track_caller]
fn check_with(plan: &str, vars: &[(&str, &str)], expect_body: &str, expect_status: JobStatus) {
    // The stack holtd's runtime threads have, which deep plans need in a debug build.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(crate::WORKER_STACK_BYTES)
        .enable_all()
        .build()
        .unwrap();
    let (status, entries) = runtime.block_on(run_entries(plan, vars));
    let mut body = String::new();
    for entry in &entries[1..entries.len() - 1] {
        format_entry(&mut body, entry);
    }
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
            wait_terminal(engine.store(), token).await;
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
        "for server web1 {\n  Bad;\n}",
        "line 1, column 1: `for server` is not supported by Holt\nline 2, column 3: unknown operation `Bad`",
    );
}

#[test]
fn exec_runs_a_program_and_logs_its_output() {
    check(
        "Exec /bin/echo (Arguments: hello \"big world\");",
        "DEBUG: Executing /bin/echo hello 'big world'\nINFO: hello big world\nDEBUG: /bin/echo exited with code 0\n",
        JobStatus::Succeeded,
    );
    check(
        "InedoCore::Exec (FileName: /bin/sh, Arguments: -c \"exit 3\");\nLog-Information never;",
        "DEBUG: Executing /bin/sh -c 'exit 3'\nERROR: /bin/sh exited with code 3, which does not satisfy SuccessExitCode == 0\n",
        JobStatus::Error,
    );
    check(
        "Exec /bin/sh (Arguments: -c \"exit 3\", SuccessExitCode: != 1);",
        "DEBUG: Executing /bin/sh -c 'exit 3'\nDEBUG: /bin/sh exited with code 3\n",
        JobStatus::Succeeded,
    );
    check(
        "Exec /bin/sh (Arguments: -c \"echo oops >&2\");",
        "DEBUG: Executing /bin/sh -c 'echo oops >&2'\nERROR: oops\nERROR: /bin/sh wrote to its error output\n",
        JobStatus::Error,
    );
    check(
        "Exec /bin/sh (Arguments: -c \"echo careful >&2; sleep 0.2; echo out\", ErrorOutputLogLevel: Warning, OutputLogLevel: Debug);",
        "DEBUG: Executing /bin/sh -c 'echo careful >&2; sleep 0.2; echo out'\nWARN: careful\nDEBUG: out\nDEBUG: /bin/sh exited with code 0\n",
        JobStatus::Warning,
    );
    check(
        "try { Exec /no/such/program; } catch { Log-Information caught; }",
        "DEBUG: Executing /no/such/program\nERROR: cannot start /no/such/program: No such file or directory (os error 2)\nINFO: caught\n",
        JobStatus::Succeeded,
    );
}

#[test]
fn shexec_runs_a_script() {
    check(
        "set $who = world;\nSHExec >>echo hello $who\nexit 0>>;",
        "DEBUG: Executing a script with /bin/sh\nINFO: hello world\nDEBUG: /bin/sh exited with code 0\n",
        JobStatus::Succeeded,
    );
    check(
        "SHExec >>exit 2>> (SuccessExitCode: == 2);",
        "DEBUG: Executing a script with /bin/sh\nDEBUG: /bin/sh exited with code 2\n",
        JobStatus::Succeeded,
    );
}

/// Values a hostile client might send, each of which must reach the program as exactly one
/// argument and run nothing.
fn hostile_values(dir: &std::path::Path) -> Vec<String> {
    let pwned = dir.join("pwned");
    let p = pwned.display();
    vec![
        format!("x; touch {p}"),
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        format!("'\"; touch {p}; \"'"),
        format!("a\ntouch {p}\nb"),
        format!("x' ; touch {p} ; '"),
    ]
}

#[test]
fn variable_values_can_never_change_the_shape_of_a_command() {
    let dir = tempfile::tempdir().unwrap();
    for value in hostile_values(dir.path()) {
        let printed: String = format!("[{value}]")
            .lines()
            .map(|l| format!("INFO: {l}\n"))
            .collect();
        for plan in [
            "Exec printf (Arguments: '\"[%s]`n\" $v');",
            "Exec printf (Arguments: [%s]`n $v);",
            "SHExec >>printf '[%s]`n' $v>>;",
        ] {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (status, entries) = runtime.block_on(run_entries(plan, &[("v", &value)]));
            let mut body = String::new();
            for entry in &entries {
                if entry.level == holt_domain::LogLevel::Info && entry.text != "Job succeeded." {
                    format_entry(&mut body, entry);
                }
            }
            assert_eq!(body, printed, "plan {plan} with {value:?}");
            assert_eq!(status, JobStatus::Succeeded, "plan {plan} with {value:?}");
            assert!(
                !dir.path().join("pwned").exists(),
                "plan {plan} with {value:?} ran a command"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_logged_as_it_arrives() {
    let (_, entries) = run_entries("SHExec >>echo one; sleep 0.6; echo two>>;", &[]).await;
    let time = |text: &str| entries.iter().find(|e| e.text == text).unwrap().time_ms;
    assert!(time("two") - time("one") >= 400, "{entries:?}");
}

fn alive(pid: &str) -> bool {
    // A zombie has exited; only a live process counts.
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let plan = format!(
        "with timeout=1 {{\n  SHExec >>echo `$`$ > {d}/main; sleep 60 & echo `$! > {d}/child; wait>>;\n}}"
    );
    let started = Instant::now();
    let (status, entries) = run_entries(&plan, &[]).await;
    let took = started.elapsed();
    assert_eq!(status, JobStatus::Error);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        entries
            .iter()
            .any(|e| e.text == "Timeout of 1 seconds elapsed."),
        "{entries:?}"
    );
    for which in ["main", "child"] {
        let pid = std::fs::read_to_string(dir.path().join(which)).unwrap();
        assert!(!alive(&pid), "the {which} process {pid} outlived the job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_left_behind_are_ended_with_their_program() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let plan = format!("SHExec >>sleep 60 & echo `$! > {d}/child>>;");
    let (status, _) = run_entries(&plan, &[]).await;
    assert_eq!(status, JobStatus::Succeeded);
    let pid = std::fs::read_to_string(dir.path().join("child")).unwrap();
    assert!(
        !alive(&pid),
        "the background process {pid} outlived the job"
    );
}

/// State-changing statements for the reference-model property.
#[derive(Debug, Clone)]
enum Step {
    LogWarning,
    LogError,
    Warn,
    ForceWarn,
    ForceNormal,
    Error,
    Throw,
    Fail,
    Try(Vec<Step>, Vec<Step>),
}

fn steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Step::LogWarning),
        Just(Step::LogError),
        Just(Step::Warn),
        Just(Step::ForceWarn),
        Just(Step::ForceNormal),
        Just(Step::Error),
        Just(Step::Throw),
        Just(Step::Fail),
    ];
    let step = leaf.prop_recursive(3, 16, 4, |inner| {
        (
            prop::collection::vec(inner.clone(), 0..4),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(body, catch)| Step::Try(body, catch))
    });
    prop::collection::vec(step, 0..6)
}

fn plan_text(steps: &[Step], out: &mut String) {
    for step in steps {
        out.push_str(match step {
            Step::LogWarning => "Log-Warning w;\n",
            Step::LogError => "Log-Error e;\n",
            Step::Warn => "warn;\n",
            Step::ForceWarn => "force warn;\n",
            Step::ForceNormal => "force normal;\n",
            Step::Error => "error;\n",
            Step::Throw => "throw t;\n",
            Step::Fail => "fail;\n",
            Step::Try(body, catch) => {
                out.push_str("try {\n");
                plan_text(body, out);
                out.push_str("} catch {\n");
                plan_text(catch, out);
                out.push_str("}\n");
                continue;
            }
        });
    }
}

/// How the reference model leaves a sequence.
enum ModelExit {
    Done,
    Raised { before: u8 },
    Failed,
}

/// The rules of PLAN-LANGUAGE.md, written plainly: 0 normal, 1 warning, 2 failing.
fn model(steps: &[Step], state: &mut u8) -> ModelExit {
    for step in steps {
        match step {
            Step::LogWarning | Step::Warn => *state = (*state).max(1),
            Step::LogError | Step::Error => *state = 2,
            Step::ForceWarn => *state = 1,
            Step::ForceNormal => *state = 0,
            Step::Throw => {
                let before = *state;
                *state = 2;
                return ModelExit::Raised { before };
            }
            Step::Fail => {
                *state = 2;
                return ModelExit::Failed;
            }
            Step::Try(body, catch) => match model(body, state) {
                ModelExit::Done => {}
                ModelExit::Failed => return ModelExit::Failed,
                ModelExit::Raised { before } => {
                    *state = before;
                    match model(catch, state) {
                        ModelExit::Done => {}
                        exit => return exit,
                    }
                }
            },
        }
    }
    ModelExit::Done
}

#[test]
fn final_status_matches_the_reference_model() {
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    runner
        .run(&steps(), |steps| {
            let mut plan = String::new();
            plan_text(&steps, &mut plan);
            let mut state = 0;
            let expected = match model(&steps, &mut state) {
                ModelExit::Done => {
                    [JobStatus::Succeeded, JobStatus::Warning, JobStatus::Error][state as usize]
                }
                ModelExit::Raised { .. } | ModelExit::Failed => JobStatus::Error,
            };
            let (status, _) = runtime.block_on(run_entries(&plan, &[]));
            proptest::prop_assert_eq!(status, expected, "plan:\n{}", plan);
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_deepest_nesting_the_parser_accepts_runs() {
    let depth = 60;
    let mut plan = String::new();
    for i in 0..depth {
        plan.push_str(if i % 3 == 0 {
            "try { "
        } else if i % 3 == 1 {
            "with retry=1 { "
        } else {
            "{ "
        });
    }
    plan.push_str("Log-Information deep;");
    for i in (0..depth).rev() {
        plan.push_str(if i % 3 == 0 { " } catch { }" } else { " }" });
    }
    check(&plan, "INFO: deep\n", JobStatus::Succeeded);
}

// ------------------------------------------------------------------- hostile values and bounds

/// Runs a plan with these variables on runtime threads with the stack holtd gives them (in this
/// debug build, which needs more stack than a release build); returns the final status and the
/// log body without the first and last lines. A bound that did not hold would crash the test.
fn run_modest(plan: &str, vars: &[(&str, &str)]) -> (JobStatus, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(crate::WORKER_STACK_BYTES)
        .enable_all()
        .build()
        .unwrap();
    let (status, entries) = runtime.block_on(run_entries(plan, vars));
    let mut body = String::new();
    for entry in &entries[1..entries.len() - 1] {
        format_entry(&mut body, entry);
    }
    (status, body)
}

#[track_caller]
fn check_bound(plan: &str, vars: &[(&str, &str)], expect_body: &str) {
    let (status, body) = run_modest(plan, vars);
    assert_eq!(body, expect_body, "plan:\n{plan}");
    assert_eq!(status, JobStatus::Error, "plan:\n{plan}");
}

#[test]
fn eval_of_a_value_that_evaluates_itself_ends_at_its_bound() {
    let line = "ERROR: $Eval nesting exceeds its limit of 32\n";
    check_bound("Log-Information $Eval($x);", &[("x", "$Eval($x)")], line);
    check_bound(
        "Log-Information \"a $Eval($x) b\";",
        &[("x", "c$Eval(\"$x\")d")],
        line,
    );
    // Two at each level would be 2^32 evaluations without the bound on nesting.
    check_bound(
        "Log-Information $Eval($x);",
        &[("x", "$Eval($x)$Eval($x)")],
        line,
    );
    // Exceeding a bound ends the job: no catch, no retry.
    check_bound(
        "try { with retry=3 { Log-Information $Eval($x); } } catch { Log-Information caught; }\nLog-Information after;",
        &[("x", "$Eval($x)")],
        line,
    );
    // In an async block, the job fails when the block is awaited.
    check_bound(
        "with async { Log-Information $Eval($x); }\nawait;\nLog-Information after;",
        &[("x", "$Eval($x)")],
        line,
    );
}

#[test]
fn deeply_nested_expressions_end_at_their_bound() {
    let deep = format!("{}$Eval($y){}", "$ToUpper(".repeat(60), ")".repeat(60));
    check_bound(
        "Log-Information $Eval($y);",
        &[("y", &deep)],
        "ERROR: expression nesting exceeds its limit of 128\n",
    );
}

#[test]
fn eval_of_text_nested_beyond_the_parser_limit_is_an_error() {
    for text in [
        "$(".repeat(100_000),
        format!("$(@l[{}", "$(@l[".repeat(100_000)),
        format!("{}x{}", "$ToUpper(".repeat(100_000), ")".repeat(100_000)),
        "$Eval(".repeat(100_000),
    ] {
        let (status, body) = run_modest("Log-Information $Eval($x);", &[("x", &text)]);
        assert_eq!(status, JobStatus::Error);
        assert!(body.starts_with("ERROR: $Eval: "), "{body}");
    }
}

#[test]
fn strings_cannot_grow_beyond_their_bound() {
    check_bound(
        "set $x = a;\nforeach $i in @Range(0, 64) { set $x = $x$x; }\nLog-Information never;",
        &[],
        "ERROR: the length of a string exceeds its limit of 16777216 bytes\n",
    );
    check_bound(
        "set @l = @(aaaaaaaaaaaaaaaa);\nforeach $i in @Range(0, 64) { set @l = @(@l, @l); set $x = x$(@l); }",
        &[],
        "ERROR: the number of items in a list or map exceeds its limit of 1000000\n",
    );
}

#[test]
fn lists_cannot_grow_beyond_their_bounds() {
    check_bound(
        "set @l = @(a);\nforeach $i in @Range(0, 64) { set @l = @(@l, @l); }",
        &[],
        "ERROR: the number of items in a list or map exceeds its limit of 1000000\n",
    );
    check_bound(
        "set @l = @(a);\nforeach $i in @Range(0, 1000) { set @l = @(@l); }",
        &[],
        "ERROR: the nesting of lists and maps exceeds its limit of 32\n",
    );
    check_bound(
        "set %m = %(k: a);\nforeach $i in @Range(0, 1000) { set %m = %(k: %m); }",
        &[],
        "ERROR: the nesting of lists and maps exceeds its limit of 32\n",
    );
    check_bound(
        "foreach $i in @Range(0, $n) { }",
        &[("n", "1000001")],
        "ERROR: the number of items in a list or map exceeds its limit of 1000000\n",
    );
}

#[test]
fn a_plan_that_spins_ends_at_the_step_bound() {
    let line = "ERROR: the number of evaluation steps of a job exceeds its limit of 10000000\n";
    // 10^9 items made.
    check_bound(
        "foreach $i in @Range(0, 1000) { foreach $j in @Range(0, 1000) { foreach $k in @Range(0, 1000) { } } }",
        &[],
        line,
    );
    // Each call doubles the work: 2^30 calls.
    check_bound(
        "module M<$d> { if $d != xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx { call M(d: x$d); call M(d: x$d); } }\ncall M(d: x);",
        &[],
        line,
    );
}

#[test]
fn nesting_across_module_calls_ends_at_its_bound_within_the_stack() {
    // The heaviest statements at every level, and the deepest expression at the innermost one.
    let deep = format!("{}$Eval($y){}", "$ToUpper(".repeat(60), ")".repeat(60));
    check_bound(
        "module M { with retry=1, timeout=60 { try { foreach $i in @(a) { if a == a { Log-Information $Eval($y); call M(); } } } catch { } } }\ncall M();",
        &[("y", &deep)],
        "ERROR: expression nesting exceeds its limit of 128\n",
    );
    check_bound(
        "module M { with retry=1, timeout=60 { try { foreach $i in @(a) { if a == a { call M(); } } } catch { } } }\ncall M();",
        &[],
        "ERROR: block nesting exceeds its limit of 64\n",
    );
    check_bound(
        "module R { call R(); }\ncall R();",
        &[],
        "ERROR: module call nesting exceeds its limit of 64\n",
    );
}

#[test]
fn async_blocks_running_at_once_are_bounded() {
    check_bound(
        "foreach $i in @Range(0, 2000) { with async { Sleep 0.5; } }",
        &[],
        "ERROR: the number of async blocks running at once exceeds its limit of 1024\n",
    );
}

#[test]
fn built_in_variables_win_over_job_variables() {
    // The HTTP layer refuses these names; the interpreter ignores them should one arrive.
    let (status, entries) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run_entries(
            "Log-Information \"$JobToken $jobtoken $ExecutionState\";",
            &[("JobToken", "/../../victim"), ("executionstate", "error")],
        ));
    assert_eq!(status, JobStatus::Succeeded);
    let line = &entries[1].text;
    let token = line.split(' ').next().unwrap();
    assert!(token.parse::<JobToken>().is_ok(), "{line}");
    assert_eq!(line, &format!("{token} {token} normal"));
}

#[test]
fn the_loader_refuses_plans_that_set_built_in_variables() {
    check_rejected(
        "set $JobToken = x;",
        "line 1, column 1: $JobToken is a built-in variable and cannot be set",
    );
    check_rejected(
        "set global $executionstate = normal;",
        "line 1, column 1: $executionstate is a built-in variable and cannot be set",
    );
    check_rejected(
        "foreach $JobToken in @(a) { }",
        "line 1, column 1: $JobToken is a built-in variable and cannot be set",
    );
    check_rejected(
        "module M<$JobToken> { }",
        "line 1, column 1: $JobToken is a built-in variable and cannot be set",
    );
    // Lists and maps of those names are other variables.
    check_rejected("set @JobToken = @(a);", "");
}

/// Every quoting context a script can put a value in, with the script printing the value back.
const SHELL_CONTEXTS: &[&str] = &[
    "SHExec >>printf '[%s]`n' $v>>;",
    "SHExec >>printf '%s`n' \"[$v]\">>;",
    "SHExec >>printf '%s`n' '[$v]'>>;",
    "SHExec >>cat <<EOF\n[$v]\nEOF\n>>;",
    "SHExec >>cat <<-EOF\n\t[$v]\n\tEOF\n>>;",
    "SHExec >>printf '[%s]`n' \"`$(printf '%s' $v)\">>;",
    "SHExec >>printf '[%s]`n' \"``printf '%s' $v``\">>;",
    "Exec printf (Arguments: [%s]`n $v);",
    "Exec printf (Arguments: '\"[%s]`n\" \"$v\"');",
];

#[test]
fn values_are_data_in_every_shell_context() {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for plan in SHELL_CONTEXTS {
        for value in &values {
            let (status, entries) = runtime.block_on(run_entries(plan, &[("v", value)]));
            let printed: Vec<&str> = entries
                .iter()
                .filter(|e| e.level == holt_domain::LogLevel::Info && e.text != "Job succeeded.")
                .map(|e| e.text.as_str())
                .collect();
            let expected = format!("[{value}]");
            assert_eq!(
                printed,
                expected.split('\n').collect::<Vec<_>>(),
                "{plan} with {value:?}"
            );
            assert_eq!(status, JobStatus::Succeeded, "{plan} with {value:?}");
            assert!(!x.exists(), "{plan} with {value:?} ran a command");
        }
    }
}

#[test]
fn a_value_in_a_quoted_heredoc_is_refused() {
    check_with(
        "SHExec >>cat <<'EOF'\n$v\nEOF\n>>;",
        &[("v", "x")],
        "ERROR: SHExec: a value cannot be interpolated into a quoted heredoc (<<'EOF'), which expands nothing; use an unquoted one (<<EOF)\n",
        JobStatus::Error,
    );
}

#[test]
fn every_bound_is_named_in_its_line() {
    use super::error::Limit;
    let lines: Vec<String> = [
        Limit::EvalNesting,
        Limit::ExprDepth,
        Limit::BlockNesting,
        Limit::CallDepth,
        Limit::StringBytes,
        Limit::ListItems,
        Limit::ValueNesting,
        Limit::AsyncBlocks,
        Limit::JobSteps,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        lines,
        [
            "$Eval nesting exceeds its limit of 32",
            "expression nesting exceeds its limit of 128",
            "block nesting exceeds its limit of 64",
            "module call nesting exceeds its limit of 64",
            "the length of a string exceeds its limit of 16777216 bytes",
            "the number of items in a list or map exceeds its limit of 1000000",
            "the nesting of lists and maps exceeds its limit of 32",
            "the number of async blocks running at once exceeds its limit of 1024",
            "the number of evaluation steps of a job exceeds its limit of 10000000",
        ]
    );
}

/// Generated values, made of the pieces that make evaluation recurse, nest and grow, each
/// evaluated by `$Eval`: every job ends, and the engine goes on.
#[test]
fn fuzz_eval_of_generated_values_always_ends() {
    use proptest::strategy::{Strategy, ValueTree};
    const PIECES: &[&str] = &[
        "$Eval(",
        "$Eval($x)",
        "$x",
        "${x}",
        ")",
        "$(",
        "`",
        "$ToUpper(",
        "$(@Range(0, 9))",
        "\"",
        ">>",
        ">-->",
        "$",
        "(",
        "x",
        "$Eval(\"$x$x\")",
        "$Count(@Range(0, 999999))",
        ",",
        "@(",
    ];
    let strategy =
        proptest::collection::vec(proptest::sample::select(PIECES), 0..40).prop_map(|p| p.concat());
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let values: Vec<String> = (0..150)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(crate::WORKER_STACK_BYTES)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_dir, engine) = engine_with("Log-Information $Eval($x);").await;
        let template = engine
            .templates()
            .get(&"t".parse().unwrap())
            .unwrap()
            .clone();
        let mut tokens = Vec::new();
        for value in &values {
            let vars: Variables = [("x".parse().unwrap(), value.clone())]
                .into_iter()
                .collect();
            tokens.push(
                engine
                    .trigger(&template, &vars, None)
                    .await
                    .unwrap()
                    .token(),
            );
        }
        for (token, value) in tokens.into_iter().zip(&values) {
            let status = wait_terminal(engine.store(), token).await;
            assert!(
                matches!(status, JobStatus::Succeeded | JobStatus::Error),
                "{value:?}: {status}"
            );
        }
    });
}
