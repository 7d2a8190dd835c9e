//! The file operations end to end: a plan that writes, copies, edits and cleans a directory,
//! run by a real holtd over HTTP.

use crate::templates::with_plan as template;
use holt_tests::Holtd;

/// A plan that uses every file operation and function on directory `d` of the server in
/// context, and what it logs.
pub(crate) fn every_operation(d: &str) -> (String, String) {
    let plan = format!(
        r#"set $d = "{d}";
Ensure-Directory "$d/src/conf";
Ensure-Directory "$d/src/conf";
Create-File (Name: "$d/src/conf/app.cfg", Text: "port=80`nname='`$(touch PWNED)'`n");
Create-File (Name: "$d/src/notes.log", Text: scratch);
Create-File (Name: "$d/src/-n ' x", Text: odd);
Files::Copy-Files (From: "$d/src", To: "$d/out", Include: "**", Exclude: "*.log");
Replace-Text (Directory: "$d/out", Include: "**.cfg", SearchText: "port=(\d+)", ReplaceWith: "port=8`$1", Regex: true);
Rename-File (From: "$d/out/conf/app.cfg", To: "$d/out/app.cfg");
Ensure-File (Name: "$d/out/app.cfg", Text: $FileContents("$d/out/app.cfg"));
Ensure-File (Name: "$d/out/new.txt", Text: "made`n");
Delete-Files (Directory: $d, Include: src);
if $FileExists("$d/out/app.cfg") && !$DirectoryExists("$d/src") {{ Log-Information "all in place"; }}
Log-Information $PathCombine($d, out, app.cfg);
Log-Information $SHEval(>>cat "$d/out/new.txt">>);
Log-Information $EnvironmentVariable(HOLT_JOB_TOKEN);
Log-Information "mark $EnvironmentVariable(HOLT_INSTANCE)";
"#
    );
    let expected = format!(
        "INFO: Created the directory {d}/src/conf\n\
         INFO: The directory {d}/src/conf already exists\n\
         INFO: Created {d}/src/conf/app.cfg\n\
         INFO: Created {d}/src/notes.log\n\
         INFO: Created {d}/src/-n ' x\n\
         INFO: Copied 2 files to {d}/out\n\
         DEBUG: Replaced text in conf/app.cfg\n\
         INFO: Replaced text in 1 file\n\
         INFO: Renamed {d}/out/conf/app.cfg to {d}/out/app.cfg\n\
         INFO: {d}/out/app.cfg is already in the desired state\n\
         INFO: {d}/out/new.txt was changed: created it\n\
         INFO: Deleted 3 files and 2 directories\n\
         INFO: all in place\n\
         INFO: {d}/out/app.cfg\n\
         INFO: made\n"
    );
    (plan, expected)
}

/// What the plan of [`every_operation`] leaves in `dir`.
pub(crate) fn check_every_operation(dir: &std::path::Path) {
    assert_eq!(
        std::fs::read_to_string(dir.join("out/app.cfg")).unwrap(),
        "port=880\nname='$(touch PWNED)'\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out/-n ' x")).unwrap(),
        "odd"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out/new.txt")).unwrap(),
        "made\n"
    );
    assert!(!dir.join("src").exists());
    assert!(!dir.join("out/notes.log").exists());
    assert!(!dir.join("out/conf/PWNED").exists());
    assert!(!dir.join("out/PWNED").exists());
}

#[tokio::test]
async fn a_plan_manages_files_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (plan, expected) = every_operation(d);
    let holtd = Holtd::start(&[("files", &template(&plan))], &[]).await;
    let token = holtd.trigger("template=files").await;
    let status = holtd.wait_terminal(&token, "").await;
    let logs = holtd.logs(&token, "").await;
    assert_eq!(status, "Succeeded", "{logs}");
    assert!(logs.contains(&expected), "{logs}");
    assert!(logs.contains(&format!("INFO: {token}\n")), "{logs}");
    check_every_operation(dir.path());
}
