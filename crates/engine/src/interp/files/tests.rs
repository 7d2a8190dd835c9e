//! The file operations against real temporary directories, each through a plan run by the
//! engine, with hostile names and contents; and the mask rules on their own.

use std::path::Path;

use holt_domain::JobStatus;

use super::{Selection, path_combine};

/// A name no shell may read as code, an option or two words.
const HOSTILE: &str = "-x 'q' \"d\" $(touch PWNED) `touch PWNED` ; *\nline2";

/// Runs `plan` as a job with the variables given and returns its status and its log body
/// (without the engine's first and last lines), as `LEVEL: text` lines.
fn run(plan: &str, vars: &[(&str, &str)]) -> (JobStatus, String) {
    crate::interp::tests::run_body(plan, vars)
}

fn dir_var(dir: &Path) -> String {
    dir.to_str().unwrap().to_owned()
}

/// Every file under `dir`, relative, sorted, with its contents.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn masks_follow_inedo_rules() {
    let sel = |inc: &[&str], exc: &[&str]| {
        Selection::new(
            &inc.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            &exc.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let top = sel(&["*.txt"], &[]);
    assert!(top.selects("a.txt"));
    assert!(!top.selects("sub/a.txt"), "* stays within one segment");
    let deep = sel(&["**.txt"], &[]);
    assert!(deep.selects("a.txt") && deep.selects("sub/deeper/a.txt"));
    assert!(!deep.selects("a.txt.bak"));
    let under = sel(&["**/obj/**"], &[]);
    assert!(under.selects("obj/x") && under.selects("a/obj/b/x"));
    assert!(!under.selects("objx/y"));
    let named = sel(&["sub"], &[]);
    assert!(named.selects("sub") && named.selects("sub/x/y"));
    assert!(
        !named.selects("subway"),
        "a plain mask names a whole segment"
    );
    let all_but = sel(&["**"], &["*.log", "keep"]);
    assert!(all_but.selects("a.txt") && all_but.selects("d/a.log"));
    assert!(!all_but.selects("a.log") && !all_but.selects("keep/inner"));
    let backslash = sel(&["sub\\*.txt"], &[]);
    assert!(backslash.selects("sub/a.txt"));
    let newline = sel(&["*"], &[]);
    assert!(newline.selects("two\nlines"), "a name may hold a newline");
    let regexy = sel(&["a+(b).txt"], &[]);
    assert!(regexy.selects("a+(b).txt") && !regexy.selects("aa(b).txt"));
}

#[test]
fn path_combine_joins_and_restarts_at_absolute_parts() {
    let p =
        |parts: &[&str]| path_combine(&parts.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(p(&["a", "b", "c.txt"]), "a/b/c.txt");
    assert_eq!(p(&["/srv/", "x"]), "/srv/x");
    assert_eq!(p(&["a", "/abs", "y"]), "/abs/y");
    assert_eq!(p(&["", "a"]), "a");
    let (status, body) = run(r#"Log-Information $PathCombine(/srv, app, "x y");"#, &[]);
    assert_eq!(status, JobStatus::Succeeded);
    assert_eq!(body, "INFO: /srv/app/x y\n");
}

#[test]
fn create_file_writes_hostile_names_byte_exact_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let text = "line one\r\n\t'$(touch PWNED)' \"`x`\" \\ é\n\nlast, no newline";
    let plan = r#"
Create-File (Name: "$D/sub dir/$N", Text: $T);
Create-File (Name: "$D/-lead", Text: "", FileMode: 600);
try { Create-File (Name: "$D/sub dir/$N", Text: other); }
catch { Log-Information caught; }
Files::Create-File (Name: "$D/sub dir/$N", Text: again, Overwrite: true);
"#;
    let (status, body) = run(
        plan,
        &[("D", &dir_var(dir.path())), ("N", HOSTILE), ("T", text)],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    let created = dir.path().join("sub dir").join(HOSTILE);
    assert_eq!(std::fs::read(&created).unwrap(), b"again");
    assert!(body.contains(
        "ERROR: Create-File: the file already exists and Overwrite is false\nINFO: caught\n"
    ));
    use std::os::unix::fs::PermissionsExt;
    let lead = std::fs::metadata(dir.path().join("-lead")).unwrap();
    assert_eq!(lead.permissions().mode() & 0o777, 0o600);
    assert!(!Path::new("PWNED").exists());
    assert!(!dir.path().join("sub dir").join("PWNED").exists());

    // The first write, byte for byte, before it was overwritten.
    let exact = tempfile::tempdir().unwrap();
    let (status, _) = run(
        r#"Create-File (Name: "$D/$N", Text: $T);"#,
        &[("D", &dir_var(exact.path())), ("N", HOSTILE), ("T", text)],
    );
    assert_eq!(status, JobStatus::Succeeded);
    assert_eq!(
        std::fs::read(exact.path().join(HOSTILE)).unwrap(),
        text.as_bytes()
    );
}

#[test]
fn ensure_file_is_idempotent_and_says_what_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = r#"
Ensure-File (Name: "$D/$N", Text: $T);
Ensure-File (Name: "$D/$N", Text: $T);
Ensure-File (Name: "$D/$N", Text: "new text");
Ensure-File (Name: "$D/$N", ReadOnly: true);
Ensure-File (Name: "$D/$N", ReadOnly: true);
Ensure-File (Name: "$D/$N", Text: "new text", ReadOnly: false);
Ensure-File (Name: "$D/gone", Exists: false);
"#;
    let (status, body) = run(
        plan,
        &[("D", &dir_var(dir.path())), ("N", "a 'b'"), ("T", "x\n")],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    let p = dir_var(dir.path());
    assert_eq!(
        body,
        format!(
            "INFO: {p}/a 'b' was changed: created it\n\
             INFO: {p}/a 'b' is already in the desired state\n\
             INFO: {p}/a 'b' was changed: wrote its text\n\
             INFO: {p}/a 'b' was changed: made it read-only\n\
             INFO: {p}/a 'b' is already in the desired state\n\
             INFO: {p}/a 'b' was changed: made it writable\n\
             INFO: {p}/gone is already absent\n"
        )
    );
    assert_eq!(
        std::fs::read(dir.path().join("a 'b'")).unwrap(),
        b"new text"
    );
    let (status, body) = run(
        r#"Ensure-File (Name: "$D/a 'b'", Exists: false);"#,
        &[("D", &p)],
    );
    assert_eq!(status, JobStatus::Succeeded);
    assert_eq!(body, format!("INFO: Deleted {p}/a 'b'\n"));
    assert!(!dir.path().join("a 'b'").exists());
}

#[test]
fn ensure_directory_creates_deletes_and_reports_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir_var(dir.path());
    let plan = r#"
Ensure-Directory "$D/$N/deep";
Ensure-Directory "$D/$N/deep";
Ensure-Directory (Name: "$D/$N", Exists: false);
Ensure-Directory (Name: "$D/$N", Exists: false);
"#;
    let (status, body) = run(plan, &[("D", &p), ("N", HOSTILE)]);
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert_eq!(
        body,
        format!(
            "INFO: Created the directory {p}/{HOSTILE}/deep\n\
             INFO: The directory {p}/{HOSTILE}/deep already exists\n\
             INFO: Deleted the directory {p}/{HOSTILE}\n\
             INFO: The directory {p}/{HOSTILE} is already absent\n"
        )
        // A name's newline starts a new log line.
        .replace("\nline2", "\nINFO: line2")
    );
    assert!(tree(dir.path()).is_empty());
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let (status, body) = run(r#"Ensure-Directory "$D/file";"#, &[("D", &p)]);
    assert_eq!(status, JobStatus::Error);
    assert_eq!(
        body,
        "ERROR: Ensure-Directory: it exists and is not a directory\n"
    );
}

/// A tree with hostile names to select from.
fn sample(dir: &Path) {
    for (rel, text) in [
        ("a.txt", "a"),
        ("b.log", "b"),
        ("-dash.txt", "dash"),
        ("sub/c.txt", "c"),
        ("sub/deeper/d.txt", "d"),
        ("sub/deeper/e.log", "e"),
        ("sp ace/$(x)'q'.txt", "q"),
        ("nl\ndir/f.txt", "f"),
    ] {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn names(dir: &Path) -> Vec<String> {
    tree(dir).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn delete_files_honours_masks_and_excludes() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let p = dir_var(dir.path());
    let (status, body) = run(
        r#"Delete-Files (Directory: $D, Include: @("*.txt", "**.log"), Exclude: "sub/deeper/**");"#,
        &[("D", &p)],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert_eq!(body, "INFO: Deleted 3 files and 0 directories\n");
    assert_eq!(
        names(dir.path()),
        [
            "nl\ndir/f.txt",
            "sp ace/$(x)'q'.txt",
            "sub/c.txt",
            "sub/deeper/d.txt",
            "sub/deeper/e.log"
        ]
    );
    let (status, body) = run(
        r#"Delete-Files (Directory: $D, Include: "**", Exclude: "**/d.txt", Verbose: true);"#,
        &[("D", &p)],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert_eq!(names(dir.path()), ["sub/deeper/d.txt"]);
    assert!(
        body.ends_with("INFO: Deleted 4 files and 2 directories\n"),
        "{body}"
    );
    assert!(dir.path().join("sub/deeper").is_dir());
    assert!(!dir.path().join("sp ace").exists());
}

#[test]
fn copy_files_copies_the_selection_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out = tempfile::tempdir().unwrap();
    let (status, body) = run(
        r#"Copy-Files (From: $D, To: "$O/copy", Include: "**", Exclude: "**.log");"#,
        &[("D", &dir_var(dir.path())), ("O", &dir_var(out.path()))],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    let copied = tree(&out.path().join("copy"));
    let expected: Vec<_> = tree(dir.path())
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".log"))
        .collect();
    assert_eq!(copied, expected);
    assert!(body.starts_with("INFO: Copied 6 files to "), "{body}");
    let (status, body) = run(
        r#"Copy-Files (From: $D, To: "$O/copy", Include: "a.txt");"#,
        &[("D", &dir_var(dir.path())), ("O", &dir_var(out.path()))],
    );
    assert_eq!(status, JobStatus::Error);
    assert!(
        body.starts_with("ERROR: Copy-Files: the target file exists and Overwrite is false"),
        "{body}"
    );
    std::fs::write(dir.path().join("a.txt"), "changed").unwrap();
    let (status, _) = run(
        r#"Copy-Files (From: $D, To: "$O/copy", Include: "a.txt", Overwrite: true);"#,
        &[("D", &dir_var(dir.path())), ("O", &dir_var(out.path()))],
    );
    assert_eq!(status, JobStatus::Succeeded);
    assert_eq!(
        std::fs::read(out.path().join("copy/a.txt")).unwrap(),
        b"changed"
    );
}

#[test]
fn transfer_files_mirrors_and_names_an_unknown_server() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("stale.txt"), "old").unwrap();
    let (status, body) = run(
        r#"Transfer-Files (FromDirectory: $D, ToDirectory: $O, Include: "**.txt", DeleteTarget: true);"#,
        &[("D", &dir_var(dir.path())), ("O", &dir_var(out.path()))],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert!(body.ends_with("and deleted 1 from it\n"), "{body}");
    let expected: Vec<_> = tree(dir.path())
        .into_iter()
        .filter(|(n, _)| n.ends_with(".txt"))
        .collect();
    assert_eq!(tree(out.path()), expected);
    let (status, body) = run(
        r#"Transfer-Files (FromDirectory: $D, ToDirectory: $D, ToServer: web1);"#,
        &[("D", &dir_var(dir.path()))],
    );
    assert_eq!(status, JobStatus::Error);
    assert_eq!(
        body,
        "ERROR: Transfer-Files: ToServer: there is no server named \"web1\"\n"
    );
}

#[test]
fn rename_file_moves_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir_var(dir.path());
    std::fs::write(dir.path().join(HOSTILE), "content").unwrap();
    std::fs::write(dir.path().join("taken"), "keep").unwrap();
    let plan = r#"
try { Rename-File (From: "$D/$N", To: "$D/taken"); }
catch { Log-Information kept; }
Rename-File (From: "$D/$N", To: "$D/new dir/-moved");
try { Rename-File (From: "$D/$N", To: "$D/x"); }
catch { Log-Information missing; }
"#;
    let (status, body) = run(plan, &[("D", &p), ("N", HOSTILE)]);
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert!(body.starts_with(
        "ERROR: Rename-File: the target exists and Overwrite is false\nINFO: kept\nINFO: Renamed "
    ));
    assert!(
        body.ends_with("ERROR: Rename-File: the file to rename does not exist\nINFO: missing\n")
    );
    assert_eq!(
        tree(dir.path()),
        [
            ("new dir/-moved".to_owned(), b"content".to_vec()),
            ("taken".to_owned(), b"keep".to_vec())
        ]
    );
}

#[test]
fn replace_text_literal_and_regex() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir_var(dir.path());
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("a.cfg"), "port=80\nhost=$(x)\n").unwrap();
    std::fs::write(dir.path().join("sub/b.cfg"), "port=81\r\n").unwrap();
    std::fs::write(dir.path().join("c.txt"), "port=82").unwrap();
    let (status, body) = run(
        r#"
Replace-Text (Directory: $D, Include: "**.cfg", SearchText: "`$(x)", ReplaceWith: "`$1 'y'");
Replace-Text (Directory: $D, Include: "**.cfg", Exclude: "sub/**", SearchText: "port=(\d+)", ReplaceWith: "port=9`$1", Regex: true);
"#,
        &[("D", &p)],
    );
    assert_eq!(status, JobStatus::Succeeded, "{body}");
    assert_eq!(
        std::fs::read(dir.path().join("a.cfg")).unwrap(),
        b"port=980\nhost=$1 'y'\n"
    );
    assert_eq!(
        std::fs::read(dir.path().join("sub/b.cfg")).unwrap(),
        b"port=81\r\n"
    );
    assert_eq!(std::fs::read(dir.path().join("c.txt")).unwrap(), b"port=82");
    assert_eq!(
        body,
        "DEBUG: Replaced text in a.cfg\nINFO: Replaced text in 1 file\n\
         DEBUG: Replaced text in a.cfg\nINFO: Replaced text in 1 file\n"
    );
}

mod functions;

#[test]
fn batches_are_bounded_by_count_and_bytes() {
    let item = |n: usize| ("s".repeat(n), "d".repeat(n));
    let small: Vec<_> = (0..600).map(|_| item(10)).collect();
    let sizes: Vec<usize> = super::batches(&small).iter().map(|b| b.len()).collect();
    assert_eq!(sizes, [256, 256, 88]);
    let big: Vec<_> = (0..10).map(|_| item(8 * 1024)).collect();
    let sizes: Vec<usize> = super::batches(&big).iter().map(|b| b.len()).collect();
    assert_eq!(sizes, [2, 2, 2, 2, 2]);
    let huge = vec![item(100 * 1024)];
    assert_eq!(super::batches(&huge).len(), 1);
    assert!(super::batches(&[]).is_empty());
}
