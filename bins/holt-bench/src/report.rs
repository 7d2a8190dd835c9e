//! The results table and the description of the machine it was measured on.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// One line of the table.
#[derive(Debug)]
struct Row {
    /// A baseline's short name (`H`, `S`...), by which figures refer to it.
    key: Option<&'static str>,
    figure: String,
    /// The measured value, or why there is none.
    value: Result<f64, String>,
    unit: &'static str,
    /// The baseline this figure is divided by.
    baseline: Option<&'static str>,
    target: &'static str,
}

/// Every figure of a run, in the order measured, with notes.
#[derive(Debug, Default)]
pub(crate) struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    /// Records a baseline under `key`.
    pub(crate) fn baseline(
        &mut self,
        key: &'static str,
        figure: impl Into<String>,
        value: Result<f64, String>,
        unit: &'static str,
    ) {
        self.rows.push(Row {
            key: Some(key),
            figure: figure.into(),
            value,
            unit,
            baseline: None,
            target: "",
        });
    }

    /// Records a figure, compared with the baseline `baseline` when given.
    pub(crate) fn figure(
        &mut self,
        figure: impl Into<String>,
        value: Result<f64, String>,
        unit: &'static str,
        baseline: Option<&'static str>,
        target: &'static str,
    ) {
        self.rows.push(Row {
            key: None,
            figure: figure.into(),
            value,
            unit,
            baseline,
            target,
        });
    }

    /// Adds a line below the table.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The value of baseline `key`, if it was measured.
    fn baseline_value(&self, key: &str) -> Option<(f64, &'static str)> {
        self.rows
            .iter()
            .find(|row| row.key == Some(key))
            .and_then(|row| row.value.as_ref().ok().map(|v| (*v, row.unit)))
    }

    /// The table as Markdown, padded so that it also reads well in a terminal.
    pub(crate) fn render(&self) -> String {
        let header = ["figure", "value", "unit", "baseline", "ratio", "target"];
        let mut cells: Vec<[String; 6]> = Vec::new();
        for row in &self.rows {
            let figure = match row.key {
                Some(key) => format!("baseline {key}: {}", row.figure),
                None => row.figure.clone(),
            };
            let value = match &row.value {
                Ok(v) => number(*v),
                Err(e) => format!("n/a ({e})"),
            };
            let (baseline, ratio) = match row.baseline {
                Some(key) => match self.baseline_value(key) {
                    Some((base, unit)) => {
                        let ratio = match &row.value {
                            Ok(v) if base != 0.0 => format_ratio(v / base),
                            _ => "-".to_owned(),
                        };
                        (format!("{key} = {} {unit}", number(base)), ratio)
                    }
                    None => (format!("{key} (not measured)"), "-".to_owned()),
                },
                None => (String::new(), String::new()),
            };
            cells.push([
                figure,
                value,
                row.unit.to_owned(),
                baseline,
                ratio,
                row.target.to_owned(),
            ]);
        }
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, row: &[String; 6]| {
            out.push('|');
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                // Numbers read best right-aligned.
                if i == 1 || i == 4 {
                    let _ = write!(out, " {cell:>w$} |");
                } else {
                    let _ = write!(out, " {cell:<w$} |");
                }
            }
            out.push('\n');
        };
        line(&mut out, &header.map(str::to_owned));
        out.push('|');
        for (i, w) in widths.iter().enumerate() {
            let dashes = "-".repeat(*w);
            if i == 1 || i == 4 {
                let _ = write!(out, "-{dashes}:|");
            } else {
                let _ = write!(out, "-{dashes}-|");
            }
        }
        out.push('\n');
        for row in &cells {
            line(&mut out, row);
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

/// A ratio, with a third decimal below 0.1 so that a small one does not show as `0.00x`.
fn format_ratio(r: f64) -> String {
    if r.abs() >= 0.1 || r == 0.0 {
        format!("{r:.2}x")
    } else {
        format!("{r:.3}x")
    }
}

/// The 1, 5 and 15 minute load averages: other work on the machine shows here.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A number with thousands separators and as many decimals as its size deserves.
pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let decimals = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    let text = format!("{v:.decimals$}");
    let (sign, rest) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// The lines above the table: when, on what, against which holtd.
pub(crate) fn header(mode: &str, holtd: &Path, workspace: Option<&Path>) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        .map_or("unknown memory".to_owned(), |kb| {
            format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".to_owned(), |k| k.trim().to_owned());
    let revision = workspace.map_or("unknown (no workspace)".to_owned(), git_revision);
    format!(
        "holt-bench ({mode}) {date}\n\
         machine: {cpus} CPUs ({model}), {memory}, Linux {kernel}, load average {load} at start\n\
         holtd:   git {revision}, {holtd}\n\
         scratch: {tmp} (databases, logs)\n",
        date = utc_now(),
        load = load_average(),
        holtd = holtd.display(),
        tmp = std::env::temp_dir().display(),
    )
}

fn git_revision(root: &Path) -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => match run(&["diff", "HEAD", "--name-only"]) {
            Some(changed) if !changed.is_empty() => {
                let files: Vec<&str> = changed.lines().collect();
                let shown = files.iter().take(4).copied().collect::<Vec<_>>().join(", ");
                let more = files.len().saturating_sub(4);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("{rev} + uncommitted changes to {shown}{more}")
            }
            _ => rev,
        },
        None => "unknown (git rev-parse failed)".to_owned(),
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`, without a date library.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}
