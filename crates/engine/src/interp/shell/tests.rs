//! Every quoting context a script can put a value in, attacked with values that would run a
//! command or change the script if they were spliced into its text, under every `sh` the
//! machine has.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::process::{self, Ended, ProcessSpec};

/// Values that run `touch` on `target` if the shell ever reads them as code.
fn hostile(target: &Path) -> Vec<String> {
    let t = target.display();
    vec![
        format!("$(touch {t})"),
        format!("`touch {t}`"),
        format!("'; touch {t}; '"),
        format!("\"; touch {t}; \""),
        "\\".to_owned(),
        format!("\nEOF\ntouch {t}"),
        format!("\n\tEOF\ntouch {t}"),
        "$HOME".to_owned(),
        "*".to_owned(),
        "a b".to_owned(),
        format!("'\"; touch {t} #"),
        format!("}}; touch {t}; {{"),
        format!(")); touch {t}; (("),
        format!("${{x:-$(touch {t})}}"),
        "-n".to_owned(),
        String::new(),
    ]
}

/// The shells to run each script under: `/bin/sh` and any other POSIX shell present.
fn shells() -> Vec<&'static str> {
    ["/bin/sh", "/bin/dash", "/bin/bash", "/bin/busybox"]
        .into_iter()
        .filter(|s| Path::new(s).exists())
        .collect()
}

/// Runs a script and returns its output lines (both streams) and exit code.
async fn run(shell: &str, script: &Script) -> (Vec<String>, i32) {
    let mut env = script.env.clone();
    env.push(("HOME".to_owned(), "/home-of-holt".to_owned()));
    let args = if shell.ends_with("busybox") {
        vec!["sh".to_owned(), "-c".to_owned(), script.text.clone()]
    } else {
        vec!["-c".to_owned(), script.text.clone()]
    };
    let spec = ProcessSpec {
        program: shell.to_owned(),
        args,
        working_directory: None,
        env,
        max_line_bytes: 64 * 1024,
    };
    let (mut running, mut lines) =
        process::start(&spec, Duration::from_secs(1)).expect("start the shell");
    let mut output = Vec::new();
    while let Some((_, batch)) = lines.recv().await {
        output.extend(batch);
    }
    let ended = running
        .wait(&CancellationToken::new(), Duration::from_secs(1))
        .await
        .unwrap();
    let Ended::Exited(status) = ended else {
        panic!("the script was stopped");
    };
    (output, status.code().unwrap_or(-1))
}

/// A script: text before the value, the value, text after it.
fn script(before: &str, value: &str, after: &str) -> Result<Script, String> {
    build(&[
        Piece::Text(before.to_owned()),
        Piece::Value(value.to_owned()),
        Piece::Text(after.to_owned()),
    ])
}

/// The contexts where a value can expand, each printing `[value]`.
const EXPANDING: &[(&str, &str, &str)] = &[
    ("bare", "printf '[%s]\\n' ", ""),
    ("double quotes", "printf '%s\\n' \"[", "]\""),
    ("single quotes", "printf '%s\\n' '[", "]'"),
    ("heredoc", "cat <<EOF\n[", "]\nEOF\n"),
    (
        "heredoc with tabs stripped",
        "cat <<-EOF\n\t[",
        "]\n\tEOF\n",
    ),
    ("two heredocs", "cat <<A; cat <<B\nA\n[", "]\nB\n"),
    (
        "command substitution",
        "printf '[%s]\\n' \"$(printf '%s' ",
        ")\"",
    ),
    ("backticks", "printf '[%s]\\n' \"`printf '%s' ", "`\""),
    ("subshell", "(printf '[%s]\\n' ", ")"),
    (
        "after a comment",
        "# it's a \"comment\n printf '[%s]\\n' ",
        "",
    ),
    (
        "double quotes in a substitution",
        "printf '%s\\n' \"$(echo \"[",
        "]\")\"",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_arrive_byte_exact_and_run_nothing_in_every_context() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pwned");
    for shell in shells() {
        for (name, before, after) in EXPANDING {
            for value in hostile(&target) {
                let built = script(before, &value, after)
                    .unwrap_or_else(|e| panic!("{name}: {value:?} refused: {e}"));
                assert!(
                    !built.text.contains("touch"),
                    "{name}: the value's text is in the script {:?}",
                    built.text
                );
                let (output, code) = run(shell, &built).await;
                // Command substitution drops trailing newlines; none of the values ends in one.
                let expected: Vec<String> = format!("[{value}]")
                    .split('\n')
                    .map(str::to_owned)
                    .collect();
                assert_eq!(
                    output, expected,
                    "{shell}, {name}, {value:?}: script {:?}",
                    built.text
                );
                assert_eq!(code, 0, "{shell}, {name}, {value:?}");
                assert!(!target.exists(), "{shell}, {name}, {value:?} ran a command");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_in_a_comment_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pwned");
    for shell in shells() {
        for value in hostile(&target) {
            let built = script("echo start # note: ", &value, "\necho end\n").unwrap();
            let (output, _) = run(shell, &built).await;
            assert_eq!(output, ["start", "end"], "{shell}, {value:?}");
            assert!(!target.exists(), "{shell}: {value:?} ran a command");
        }
    }
}

#[track_caller]
fn refused(before: &str, after: &str, expect: &str) {
    let err = script(before, "$(touch /tmp/holt-never)", after).expect_err("accepted");
    assert!(err.contains(expect), "{before:?}: {err}");
}

#[test]
fn contexts_where_no_reference_works_are_refused() {
    refused("cat <<'EOF'\n", "\nEOF\n", "quoted heredoc");
    refused("cat <<\"EOF\"\n", "\nEOF\n", "quoted heredoc");
    refused("cat <<\\EOF\n", "\nEOF\n", "quoted heredoc");
    refused("cat <<-'E'OF\n\t", "\n\tEOF\n", "quoted heredoc");
    refused("cat <<", "\nx\n", "heredoc's delimiter");
    refused("echo $((1 + ", "))", "arithmetic");
    refused("((x = ", "))", "arithmetic");
    refused("echo ${x:-", "}", "`${...}`");
    refused("echo \"${x:-", "}\"", "`${...}`");
    refused("echo \\", "", "`\\`");
    refused("echo \"\\", "\"", "`\\`");
    refused("echo $", "", "`$`");
}

#[test]
fn references_suit_their_context() {
    let text = |before: &str, after: &str| script(before, "v", after).unwrap().text;
    assert_eq!(text("echo ", ""), "echo \"${HOLT_VALUE_1}\"");
    assert_eq!(text("echo \"", "\""), "echo \"${HOLT_VALUE_1}\"");
    assert_eq!(text("echo '", "'"), "echo ''\"${HOLT_VALUE_1}\"''");
    assert_eq!(text("cat <<E\n", "\nE\n"), "cat <<E\n${HOLT_VALUE_1}\nE\n");
    // After the heredoc's end, a command context again.
    assert_eq!(
        text("cat <<'E'\nx\nE\necho ", ""),
        "cat <<'E'\nx\nE\necho \"${HOLT_VALUE_1}\""
    );
    // `$#` and `a#b` start no comment.
    assert_eq!(
        text("echo $# a#b '", "'"),
        "echo $# a#b ''\"${HOLT_VALUE_1}\"''"
    );
    // After a substitution the word goes on; after a subshell a `#` starts a comment.
    assert_eq!(
        text("echo $(a)#'", "'"),
        "echo $(a)#''\"${HOLT_VALUE_1}\"''"
    );
    assert_eq!(text("(a)#'", ""), "(a)#'\"${HOLT_VALUE_1}\"");
    // A here-string is a word, not a heredoc.
    assert_eq!(text("cat <<< ", ""), "cat <<< \"${HOLT_VALUE_1}\"");
    let built = build(&[
        Piece::Value("a".into()),
        Piece::Text(" ".into()),
        Piece::Value("b".into()),
    ])
    .unwrap();
    assert_eq!(
        built.env,
        [
            ("HOLT_VALUE_1".to_owned(), "a".to_owned()),
            ("HOLT_VALUE_2".to_owned(), "b".to_owned())
        ]
    );
}

/// Pieces of shell syntax that open and close every context the scanner knows, and some it
/// does not, so generated scripts put values in places no list of cases would think of.
const FRAGMENTS: &[&str] = &[
    "'",
    "\"",
    "`",
    "$(",
    ")",
    "(",
    "${",
    "}",
    "$((",
    "((",
    "<<EOF\n",
    "<<'EOF'\n",
    "<<-EOF\n",
    "<<\"E\"\n",
    "\nEOF\n",
    "\nE\n",
    "\n\tEOF\n",
    "#",
    "\\",
    "$",
    " ",
    "\n",
    "echo ",
    "printf %s ",
    ";",
    "|",
    "&&",
    "cat ",
    "x",
    "=",
    "case a in a) ",
    ";; esac",
    "$'",
    "<<<",
    "{ ",
    " }",
];

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn piece() -> impl Strategy<Value = Option<&'static str>> {
        prop_oneof![
            4 => prop::sample::select(FRAGMENTS).prop_map(Some),
            1 => Just(None),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the script around it, a value is either refused or never runs.
        #[test]
        fn fuzz_no_script_runs_a_value(pieces in prop::collection::vec(piece(), 1..24), pick in 0usize..16) {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("pwned");
            let values = hostile(&target);
            let pieces: Vec<Piece> = pieces
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Some(text) => Piece::Text((*text).to_owned()),
                    None => Piece::Value(values[(pick + i) % values.len()].clone()),
                })
                .collect();
            let Ok(built) = build(&pieces) else {
                return Ok(());
            };
            prop_assert!(!built.text.contains("touch"), "{:?}", built.text);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for shell in shells() {
                runtime.block_on(run(shell, &built));
                prop_assert!(!target.exists(), "{} ran a value: {:?}", shell, built.text);
            }
        }
    }
}
