//! holt-bench: measures a real holtd process on loopback against baselines run on the same
//! machine in the same run (a raw hyper server, raw SQLite), and prints each figure beside its
//! baseline as a ratio, so that results survive a noisy machine. The figures and targets are
//! those of issue 5; docs/benchmarks.md says what each measures and how. With `--db URL` it
//! measures holtd on PostgreSQL instead, one node and a cluster of three, against raw
//! PostgreSQL (issue 11).
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
mod follow;
mod holtd;
mod pg;
mod report;
mod ssh;
mod wake;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::figures::{Bench, Sizes};
use crate::holtd::{ScratchDir, Store};
use crate::pg::PgServer;
use crate::report::Report;

/// The error type of the benchmark: any error, shown as text.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(
    name = "holt-bench",
    about = "Measures holtd on loopback against raw hyper and raw SQLite baselines (issue 5), \
             or on PostgreSQL against raw PostgreSQL (issue 11)"
)]
struct Cli {
    /// A smoke run of about a minute: smaller sizes and shorter windows. Every figure is still
    /// measured; the numbers are not comparable with a full run.
    #[arg(long)]
    quick: bool,
    /// Only these figures, comma-separated: H, S, L, idle, T1, T2, T3, T4, T5, T6, T7, SSH;
    /// with --db: H, P, T1, T2, T3, W, F. The baselines they are compared with are measured too.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Measure this holtd binary instead of building one with cargo.
    #[arg(long)]
    holtd: Option<PathBuf>,
    /// Measure holtd on PostgreSQL: T1, T2, T3 and W against one node and against three nodes,
    /// each measurement on a database of its own created on this server and dropped after,
    /// beside baseline P. A URL of a database on the server where the user may create
    /// databases, e.g. postgres://postgres@127.0.0.1:5432/test.
    #[arg(long, value_name = "URL")]
    db: Option<String>,
}

/// Every figure, in the order measured.
const FIGURES: [&str; 12] = [
    "H", "S", "L", "IDLE", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "SSH",
];

/// Every figure on PostgreSQL (`--db`), in the order measured.
const PG_FIGURES: [&str; 7] = ["H", "P", "T1", "T2", "T3", "W", "F"];

/// The cluster sizes each PostgreSQL figure is measured at, one after the other.
const PG_NODES: [usize; 2] = [1, 3];

/// The baselines each figure is compared with.
fn needs(figure: &str) -> &'static [&'static str] {
    match figure {
        "T1" | "T3" | "T5" => &["H"],
        "T2" => &["S"],
        "T4" => &["L"],
        _ => &[],
    }
}

/// The baselines each figure on PostgreSQL is compared with.
fn pg_needs(figure: &str) -> &'static [&'static str] {
    match figure {
        "T1" | "T2" => &["P"],
        "T3" => &["H"],
        _ => &[],
    }
}

fn selection(
    only: &[String],
    figures: &[&'static str],
    needs: fn(&str) -> &'static [&'static str],
) -> Result<BTreeSet<&'static str>, String> {
    if only.is_empty() {
        return Ok(figures.iter().copied().collect());
    }
    let mut chosen = BTreeSet::new();
    for name in only {
        let name = name.trim().to_ascii_uppercase();
        let figure = figures
            .iter()
            .copied()
            .find(|f| *f == name)
            .ok_or_else(|| format!("unknown figure {name:?}; known: {}", figures.join(", ")))?;
        chosen.insert(figure);
        chosen.extend(needs(figure));
    }
    Ok(chosen)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let chosen = match &cli.db {
        None => selection(&cli.only, &FIGURES, needs),
        Some(_) => selection(&cli.only, &PG_FIGURES, pg_needs),
    };
    let chosen = match chosen {
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
    // The server is checked before anything is built, so that a wrong URL fails at once.
    let pg = match &cli.db {
        Some(url) => Some(PgServer::open(url).await?),
        None => None,
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
    let mut header = report::header(mode, &bench.holtd, workspace.as_deref());
    if let Some(server) = &pg {
        header.push_str(&format!(
            "database: PostgreSQL at {} ({}); a database of its own for each measurement\n",
            server.shown, server.settings
        ));
    }
    eprint!("{header}");

    // Each step is a figure on a store: SQLite, or PostgreSQL with a number of nodes (every
    // PostgreSQL figure but the baselines once per cluster size, the sizes side by side).
    let steps: Vec<(&'static str, Store<'_>)> = match &pg {
        None => FIGURES
            .into_iter()
            .filter(|f| chosen.contains(f))
            .map(|f| (f, Store::Sqlite))
            .collect(),
        Some(server) => PG_FIGURES
            .into_iter()
            .filter(|f| chosen.contains(f))
            .flat_map(|f| {
                let sizes: &[usize] = if matches!(f, "H" | "P") {
                    &[1]
                } else {
                    &PG_NODES
                };
                sizes
                    .iter()
                    .map(move |&nodes| (f, Store::Postgres { server, nodes }))
            })
            .collect(),
    };
    let mut report = Report::default();
    let mut complete = true;
    for (figure, store) in steps {
        let label = if matches!(figure, "H" | "P") {
            figure.to_owned()
        } else {
            store.name(figure)
        };
        eprintln!("holt-bench: measuring {label}");
        let began = std::time::Instant::now();
        let measured = match (figure, store) {
            ("H", _) => figures::baseline_h(&bench, &mut report).await,
            ("S", _) => figures::baseline_s(&bench, &mut report).await,
            ("L", _) => figures::baseline_l(&bench, &mut report).await,
            ("P", Store::Postgres { server, .. }) => {
                figures::baseline_p(&bench, server, &mut report).await
            }
            ("IDLE", _) => figures::idle(&bench, &mut report).await,
            ("T1", store) => figures::t1(&bench, store, &mut report).await,
            ("T2", store) => figures::t2(&bench, store, &mut report).await,
            ("T3", store) => figures::t3(&bench, store, &mut report).await,
            ("T4", _) => figures::t4(&bench, &mut report).await,
            ("T5", _) => figures::t5(&bench, &mut report).await,
            ("T6", _) => figures::t6(&bench, &mut report).await,
            ("T7", _) => figures::t7(&bench, &mut report).await,
            ("W", store) => wake::w(&bench, store, &mut report).await,
            ("F", store) => follow::f(&bench, store, &mut report).await,
            ("SSH", _) => ssh::ssh(&bench, &mut report).await,
            _ => Err(format!("{label} cannot be measured here").into()),
        };
        // Each figure's files are deleted by now; flushing what is left of them to disk keeps
        // their write-back from slowing the next figure's fsyncs.
        let _ = std::process::Command::new("sync").status();
        eprintln!(
            "holt-bench: {label} took {:.1} s",
            began.elapsed().as_secs_f64()
        );
        if let Err(e) = measured {
            complete = false;
            eprintln!("holt-bench: {label} failed: {e}");
            report.figure(
                format!("{label} (failed)"),
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
