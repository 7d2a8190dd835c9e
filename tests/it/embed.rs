//! The embedding example (`examples/embed.rs`) runs as its doc says and prints its job's log.

use std::path::Path;
use std::process::Command;

#[test]
fn the_embedding_example_runs_its_job_and_prints_the_log() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut run = Command::new(cargo);
    run.args(["run", "--quiet", "-p", "holt-engine", "--example", "embed"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    // Built with the profile that built the tests, as the harness builds holtd.
    let exe = std::env::current_exe().unwrap();
    if exe
        .ancestors()
        .nth(2)
        .and_then(Path::file_name)
        .is_some_and(|n| n == "release")
    {
        run.arg("--release");
    }
    let output = run.output().expect("run cargo run --example embed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        "job 1: Succeeded\n\
         DEBUG: Job started from template greet.\n\
         INFO: Hello, Holt.\n\
         INFO: This job runs inside the embedding program.\n\
         DEBUG: Executing echo 'Holt, from a child process'\n\
         INFO: Holt, from a child process\n\
         DEBUG: echo exited with code 0\n\
         INFO: Job succeeded.\n"
    );
}
