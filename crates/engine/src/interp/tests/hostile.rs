//! Hostile values and the bounds that hold against them: self-evaluating values, nesting, growth, spinning plans, built-in variables, script quoting contexts.

use super::*;

#[track_caller]
fn check_bound(plan: &str, vars: &[(&str, &str)], expect_body: &str) {
    // A bound that did not hold would crash the test.
    let (status, body) = run_body(plan, vars);
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
        let (status, body) = run_body("Log-Information $Eval($x);", &[("x", &text)]);
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
    use crate::interp::error::Limit;
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
            let status = wait_terminal(&engine, token).await;
            assert!(
                matches!(status, JobStatus::Succeeded | JobStatus::Error),
                "{value:?}: {status}"
            );
        }
    });
}
