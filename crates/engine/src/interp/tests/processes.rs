//! Exec and SHExec: output, hostile values as single arguments, timeouts ending whole process groups.

use super::*;

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
