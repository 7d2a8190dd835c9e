//! holt-bench: measures a real holtd process on loopback against baselines run on the same
//! machine in the same run (a raw hyper server, raw SQLite), and prints each figure beside its
//! baseline as a ratio, so that results survive a noisy machine. The figures and targets are
//! those of issue 5; docs/benchmarks.md says what each measures and how.
//!
//! It builds holtd with the cargo and profile that built it, starts a fresh holtd for each
//! figure in a temporary directory, listens and connects only on 127.0.0.1, and bounds every
//! load loop by a count and a time.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark driver starts holtd, cargo, git, kill, sync and cat as a user would"
)]

mod baseline;
mod client;
mod figures;
mod holtd;
mod report;
mod ssh;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::figures::{Bench, Sizes};
use crate::holtd::ScratchDir;
use crate::report::Report;

/// The error type of the benchmark: any error, shown as text.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(
    name = "holt-bench",
    about = "Measures holtd on loopback against raw hyper and raw SQLite baselines (issue 5)"
)]
struct Cli {
    /// A smoke run of about a minute: smaller sizes and shorter windows. Every figure is still
    /// measured; the numbers are not comparable with a full run.
    #[arg(long)]
    quick: bool,
    /// Only these figures, comma-separated: H, S, L, idle, T1, T2, T3, T4, T5, T6, T7, SSH. The
    /// baselines they are compared with are measured too.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Measure this holtd binary instead of building one with cargo.
    #[arg(long)]
    holtd: Option<PathBuf>,
}

/// Every figure, in the order measured.
const FIGURES: [&str; 12] = [
    "H", "S", "L", "IDLE", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "SSH",
];

/// The baselines each figure is compared with.
fn needs(figure: &str) -> &'static [&'static str] {
    match figure {
        "T1" | "T3" | "T5" => &["H"],
        "T2" => &["S"],
        "T4" => &["L"],
        _ => &[],
    }
}

fn selection(only: &[String]) -> Result<BTreeSet<&'static str>, String> {
    if only.is_empty() {
        return Ok(FIGURES.into_iter().collect());
    }
    let mut chosen = BTreeSet::new();
    for name in only {
        let name = name.trim().to_ascii_uppercase();
        let figure = FIGURES
            .into_iter()
            .find(|f| *f == name)
            .ok_or_else(|| format!("unknown figure {name:?}; known: {}", FIGURES.join(", ")))?;
        chosen.insert(figure);
        chosen.extend(needs(figure));
    }
    Ok(chosen)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let chosen = match selection(&cli.only) {
        Ok(chosen) => chosen,
        Err(e) => {
            eprintln!("holt-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The load generator's runtime is built as holtd builds its own: multi-thread, default
    // workers.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("holt-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, chosen)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("holt-bench: some figures could not be measured (n/a above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("holt-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Measures the chosen figures and prints the table; returns whether every one was measured.
async fn run(cli: Cli, chosen: BTreeSet<&'static str>) -> Result<bool, BoxError> {
    let (mode, sizes) = if cli.quick {
        ("quick", Sizes::quick())
    } else {
        ("full", Sizes::full())
    };
    let holtd = match cli.holtd {
        Some(path) => path,
        None => {
            eprintln!("holt-bench: building holtd");
            tokio::task::spawn_blocking(|| holtd::build_holtd().map_err(|e| e.to_string()))
                .await??
        }
    };
    let holtd_help = std::process::Command::new(&holtd)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let workspace = holtd::workspace_root();
    let bench = Bench {
        holtd,
        sizes,
        scratch: ScratchDir::new("baselines")?,
        examples: workspace
            .as_ref()
            .map(|root| root.join("examples/templates"))
            .filter(|dir| dir.is_dir()),
        holtd_help,
    };
    let header = report::header(mode, &bench.holtd, workspace.as_deref());
    eprint!("{header}");

    let mut report = Report::default();
    let mut complete = true;
    for figure in FIGURES {
        if !chosen.contains(figure) {
            continue;
        }
        eprintln!("holt-bench: measuring {figure}");
        let began = std::time::Instant::now();
        let measured = match figure {
            "H" => figures::baseline_h(&bench, &mut report).await,
            "S" => figures::baseline_s(&bench, &mut report).await,
            "L" => figures::baseline_l(&bench, &mut report).await,
            "IDLE" => figures::idle(&bench, &mut report).await,
            "T1" => figures::t1(&bench, &mut report).await,
            "T2" => figures::t2(&bench, &mut report).await,
            "T3" => figures::t3(&bench, &mut report).await,
            "T4" => figures::t4(&bench, &mut report).await,
            "T5" => figures::t5(&bench, &mut report).await,
            "T6" => figures::t6(&bench, &mut report).await,
            "T7" => figures::t7(&bench, &mut report).await,
            _ => ssh::ssh(&bench, &mut report).await,
        };
        // Each figure's files are deleted by now; flushing what is left of them to disk keeps
        // their write-back from slowing the next figure's fsyncs.
        let _ = std::process::Command::new("sync").status();
        eprintln!(
            "holt-bench: {figure} took {:.1} s",
            began.elapsed().as_secs_f64()
        );
        if let Err(e) = measured {
            complete = false;
            eprintln!("holt-bench: {figure} failed: {e}");
            report.figure(
                format!("{figure} (failed)"),
                Err(e.to_string()),
                "",
                None,
                "",
            );
        }
    }
    report.note(format!(
        "load average at the end: {} (other work on the machine makes every figure noisier)",
        report::load_average()
    ));
    println!("{header}");
    println!("{}", report.render());
    Ok(complete)
}
