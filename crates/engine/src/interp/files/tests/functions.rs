//! The functions that look at the server, the job's working directory, timeouts, bounds and
//! batches.

use std::time::Duration;

use super::*;

#[test]
fn relative_paths_resolve_in_the_jobs_working_directory() {
    let (status, body) = run(
        r#"
Create-File (Name: "rel/f.txt", Text: hello);
Copy-Files (From: rel, To: copy);
Delete-Files "**";
"#,
        &[],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert_eq!(
        body,
        "INFO: Created rel/f.txt\nINFO: Copied 1 file to copy\nINFO: Deleted 2 files and 2 directories\n"
    );
}

#[test]
fn functions_look_at_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir_var(dir.path());
    std::fs::write(dir.path().join(HOSTILE), "é contents\nline 2\n").unwrap();
    std::fs::create_dir(dir.path().join("d ir")).unwrap();
    let plan = r#"
set $f = $PathCombine($D, $N);
set $none = "$D/none";
set $dir = "$D/d ir";
Log-Information "$FileExists($f) $FileExists($none) $FileExists($dir)";
Log-Information "$DirectoryExists($dir) $DirectoryExists($f)";
Log-Information $FileContents($f, 4);
if $FileExists($none) && $FileContents($none) == x { Log-Information wrong; }
else { Log-Information "short-circuit kept"; }
Log-Information "[$EnvironmentVariable(HOLT_TEST_UNSET_VARIABLE)]";
Log-Information $SHEval("printf '%s' $N | wc -l");
Log-Information $SHEval("printf %s $N > $D/from-sheval; echo '  done  '");
try { Log-Information $FileContents($none); }
catch { Log-Information caught; }
try { Log-Information $EnvironmentVariable("X; touch PWNED"); }
catch { Log-Information refused; }
"#;
    let (status, body) = run(plan, &[("D", &p), ("N", HOSTILE)]);
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert_eq!(
        body,
        "INFO: true false false\n\
             INFO: true false\n\
             INFO: é co\n\
             INFO: short-circuit kept\n\
             INFO: []\n\
             INFO: 1\n\
             INFO: done\n\
             ERROR: $FileContents: no such file\n\
             INFO: caught\n\
             ERROR: $EnvironmentVariable: not a variable name\n\
             INFO: refused\n"
    );
    assert_eq!(
        std::fs::read(dir.path().join("from-sheval")).unwrap(),
        HOSTILE.as_bytes()
    );
    assert!(!Path::new("PWNED").exists());
    assert!(!dir.path().join("PWNED").exists());
}

#[test]
fn environment_variable_reads_the_servers_environment() {
    // PATH is set for holtd, and so on the server in context.
    let path = std::env::var("PATH").unwrap();
    let (status, body) = run("Log-Information $EnvironmentVariable(PATH);", &[]);
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert_eq!(body, format!("INFO: {path}\n"));
}

#[test]
fn a_host_function_in_eval_text_fails_clearly() {
    let (status, body) = run(r#"Log-Information $Eval("`$FileExists(/)");"#, &[]);
    assert_eq!(status, JobStatus::Error);
    assert!(
        body.starts_with("ERROR: $FileExists looks at the server, and can only be used"),
        "{body}"
    );
}

#[test]
fn a_script_is_ended_by_a_timeout_and_its_output_is_bounded() {
    let started = std::time::Instant::now();
    let (status, body) = run(
        r#"
try { with timeout=1 { Log-Information $SHEval("sleep 30; echo late"); } }
catch { Log-Information "timed out"; }
try { Log-Information $SHEval("head -c 17000000 /dev/zero"); }
catch { Log-Information "too much"; }
"#,
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout ended the script"
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert!(body.contains("INFO: timed out\n"), "{body}");
    assert!(!body.contains("late"), "{body}");
    assert!(
        body.ends_with(
            "ERROR: $SHEval: the output went beyond 16 MiB, the most a file operation reads\nINFO: too much\n"
        ),
        "{body}"
    );
}

#[test]
fn the_working_directory_is_the_jobs_own() {
    let (status, body) = run(
        "Create-File (Name: f.txt, Text: x);\nLog-Information $SHEval(pwd);\nLog-Information $FileExists(f.txt);",
        &[],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[2], "INFO: true");
    let wd = Path::new(lines[1].strip_prefix("INFO: ").unwrap());
    assert_eq!(wd.parent().unwrap(), std::env::temp_dir().join("holt-jobs"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(wd).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "only its owner may enter it");
    assert_eq!(std::fs::read(wd.join("f.txt")).unwrap(), b"x");
    std::fs::remove_dir_all(wd).unwrap();
}

#[test]
fn working_directory_names_the_jobs_directory_and_a_variable_shadows_it() {
    let (status, body) = run(
        "Create-File (Name: g.txt, Text: y);\nLog-Information \"$FileExists($PathCombine($WorkingDirectory, g.txt)) in $WorkingDirectory\";\nset $WorkingDirectory = mine;\nLog-Information $WorkingDirectory;",
        &[],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    let wd = lines[1].strip_prefix("INFO: true in ").unwrap();
    assert_eq!(
        Path::new(wd).parent().unwrap(),
        std::env::temp_dir().join("holt-jobs")
    );
    assert_eq!(lines[2], "INFO: mine");
    std::fs::remove_dir_all(wd).unwrap();
}

#[test]
fn argument_errors_fail_the_operation_and_bounds_end_the_job() {
    let (status, body) = run(
        "try { Create-File x (Name: y); } catch { Log-Information caught; }\ntry { Copy-Files (To: t, Overwrite: maybe); } catch { Log-Information caught; }",
        &[],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert_eq!(
        body,
        "ERROR: Create-File: Name is given twice\nINFO: caught\n\
         ERROR: Copy-Files: Overwrite: expected true or false, found \"maybe\"\nINFO: caught\n"
    );
    // An exceeded bound is not an operation's failure: no catch runs, the job ends.
    let (status, body) = run(
        "try { Create-File (Name: x, Text: $Count(@Range(0, 2000000))); } catch { Log-Information caught; }",
        &[],
    );
    assert_eq!(status, JobStatus::Error);
    assert!(!body.contains("caught"), "{body}");
    assert!(!body.contains("Create-File:"), "{body}");
}

#[test]
fn many_files_go_in_batches_and_large_texts_whole() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..600 {
        std::fs::write(src.join(format!("f {i}.txt")), i.to_string()).unwrap();
    }
    // Larger than a pipe's buffer, and without a line break, so it must be written whole.
    let big: String = (0..3_000_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let (status, body) = run(
        r#"
Copy-Files (From: "$D/src", To: "$D/dst");
Create-File (Name: "$D/big", Text: $B);
Ensure-File (Name: "$D/big", Text: $B);
Delete-Files (Directory: "$D/src", Include: "**");
"#,
        &[("D", &dir_var(dir.path())), ("B", &big)],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    let copied = tree(&dir.path().join("dst"));
    assert_eq!(copied.len(), 600);
    assert!(copied.contains(&("f 599.txt".to_owned(), b"599".to_vec())));
    assert_eq!(
        std::fs::read(dir.path().join("big")).unwrap(),
        big.as_bytes()
    );
    assert!(body.contains("is already in the desired state\n"), "{body}");
    assert!(
        body.ends_with("INFO: Deleted 600 files and 0 directories\n"),
        "{body}"
    );
    assert!(tree(&src).is_empty());
}
