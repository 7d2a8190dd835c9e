//! The execution-state rules checked against a plain reference model, and the deepest nesting the parser accepts.

use super::*;

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
