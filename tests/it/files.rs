//! The file operations end to end: a plan that writes, copies, edits and cleans a directory,
//! run by a real holtd over HTTP.

use crate::templates::with_plan as template;
use holt_tests::Holtd;

#[tokio::test]
async fn a_plan_manages_files_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let plan = format!(
        r#"set $d = "{d}";
Ensure-Directory "$d/src/conf";
Create-File (Name: "$d/src/conf/app.cfg", Text: "port=80`nname='`$(touch PWNED)'`n");
Create-File (Name: "$d/src/notes.log", Text: scratch);
Files::Copy-Files (From: "$d/src", To: "$d/out", Include: "**", Exclude: "*.log");
Replace-Text (Directory: "$d/out", Include: "**.cfg", SearchText: "port=(\d+)", ReplaceWith: "port=8`$1", Regex: true);
Rename-File (From: "$d/out/conf/app.cfg", To: "$d/out/app.cfg");
Ensure-File (Name: "$d/out/app.cfg", Text: $FileContents("$d/out/app.cfg"));
Delete-Files (Directory: $d, Include: src);
if $FileExists("$d/out/app.cfg") && !$DirectoryExists("$d/src") {{ Log-Information "all in place"; }}
"#
    );
    let holtd = Holtd::start(&[("files", &template(&plan))], &[]).await;
    let token = holtd.trigger("template=files").await;
    let status = holtd.wait_terminal(&token, "").await;
    let logs = holtd.logs(&token, "").await;
    assert_eq!(status, "Succeeded", "{logs}");
    let expected = format!(
        "INFO: Created the directory {d}/src/conf\n\
         INFO: Created {d}/src/conf/app.cfg\n\
         INFO: Created {d}/src/notes.log\n\
         INFO: Copied 1 file to {d}/out\n\
         DEBUG: Replaced text in conf/app.cfg\n\
         INFO: Replaced text in 1 file\n\
         INFO: Renamed {d}/out/conf/app.cfg to {d}/out/app.cfg\n\
         INFO: {d}/out/app.cfg is already in the desired state\n\
         INFO: Deleted 2 files and 2 directories\n\
         INFO: all in place\n"
    );
    assert!(logs.contains(&expected), "{logs}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/app.cfg")).unwrap(),
        "port=880\nname='$(touch PWNED)'\n"
    );
    assert!(!dir.path().join("src").exists());
    assert!(!dir.path().join("out/notes.log").exists());
    assert!(!dir.path().join("out/conf/PWNED").exists());
}
