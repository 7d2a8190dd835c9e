//! The engine's counters, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use holt_domain::{JobStatus, TemplateName};

/// Counters about jobs since the process started.
#[derive(Debug, Default)]
pub struct Metrics {
    triggered: Mutex<BTreeMap<String, u64>>,
    finished: Mutex<BTreeMap<(String, &'static str), u64>>,
    log_lines: AtomicU64,
    webhooks: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub(crate) fn triggered(&self, template: &TemplateName) {
        *crate::sync::lock(&self.triggered)
            .entry(template.as_str().to_owned())
            .or_default() += 1;
    }

    pub(crate) fn finished(&self, template: &TemplateName, status: JobStatus) {
        *crate::sync::lock(&self.finished)
            .entry((template.as_str().to_owned(), status.as_str()))
            .or_default() += 1;
    }

    pub(crate) fn webhook(&self, result: &'static str) {
        *crate::sync::lock(&self.webhooks).entry(result).or_default() += 1;
    }

    pub(crate) fn logged(&self, lines: u64) {
        self.log_lines.fetch_add(lines, Ordering::Relaxed);
    }

    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP holt_jobs_triggered_total Jobs created by triggers since the server started.\n",
        );
        out.push_str("# TYPE holt_jobs_triggered_total counter\n");
        for (template, count) in crate::sync::lock(&self.triggered).iter() {
            let _ = writeln!(
                out,
                "holt_jobs_triggered_total{{template=\"{}\"}} {count}",
                escape(template)
            );
        }
        out.push_str("# HELP holt_jobs_finished_total Jobs that ended since the server started, by final status.\n");
        out.push_str("# TYPE holt_jobs_finished_total counter\n");
        for ((template, status), count) in crate::sync::lock(&self.finished).iter() {
            let _ = writeln!(
                out,
                "holt_jobs_finished_total{{template=\"{}\",status=\"{status}\"}} {count}",
                escape(template)
            );
        }
        out.push_str("# HELP holt_log_lines_total Log lines written since the server started.\n");
        out.push_str("# TYPE holt_log_lines_total counter\n");
        let _ = writeln!(
            out,
            "holt_log_lines_total {}",
            self.log_lines.load(Ordering::Relaxed)
        );
        out.push_str("# HELP holt_webhook_attempts_total Webhook delivery attempts since the server started, by result (delivered, failed, given_up).\n");
        out.push_str("# TYPE holt_webhook_attempts_total counter\n");
        for (result, count) in crate::sync::lock(&self.webhooks).iter() {
            let _ = writeln!(
                out,
                "holt_webhook_attempts_total{{result=\"{result}\"}} {count}"
            );
        }
    }
}

/// Escapes a label value as the text format requires. Template names cannot hold any of these
/// characters today; escaping keeps the output valid should that change.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
