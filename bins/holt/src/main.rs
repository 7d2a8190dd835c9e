//! `holt`, the command line of a Holt server: trigger a job and wait for it or follow its log,
//! read a job's status and log, cancel it, and list jobs and templates. Every call goes through
//! `holt-client`. With `--wait` or `--follow` the exit code is the job's outcome, so scripts
//! and CI can run a job as a step.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use holt_client::{Canceled, Client, Error, JobQuery, JobStatus, LogFormat, LogOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The exit code of a job that ended `Error` (and of a failure that is not a refusal).
const EXIT_ERROR: u8 = 1;
/// The exit code of a job that ended `Warning`.
const EXIT_WARNING: u8 = 2;
/// The exit code when the server refused the request.
const EXIT_REFUSED: u8 = 3;
/// The exit code when the server could not be reached.
const EXIT_UNREACHABLE: u8 = 4;

/// How long one status call waits while a spinner shows: the job's end answers at once, and
/// the window only bounds how stale the status shown next to the spinner may be.
const SPINNER_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    name = "holt",
    version,
    about = "Trigger, watch and cancel Holt jobs from the command line",
    after_help = "\
Exit codes:
  0  success; with --wait or --follow, the job ended Succeeded
  1  the job ended Error (with --wait or --follow), or an unexpected answer
  2  the job ended Warning (with --wait or --follow)
  3  the request was refused, by the server (its one-line reason is on stderr) or by holt
     itself (a bad flag or URL)
  4  the server could not be reached

While waiting, a spinner with the job's status and the elapsed time is drawn on stderr, only
when stderr is a terminal."
)]
struct Cli {
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "HOLT_URL",
        default_value = "http://127.0.0.1:8446"
    )]
    url: String,
    /// The API key: a template's key, or an admin key (needed by `jobs` and `templates`).
    #[arg(long, global = true, env = "HOLT_KEY", hide_env_values = true)]
    key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Trigger a job of TEMPLATE and print its token.
    Trigger {
        /// The template's name.
        template: String,
        /// A variable for the job, as NAME=VALUE (repeatable; the value is sent byte for
        /// byte, and may hold spaces, quotes and `=`).
        #[arg(short = 'v', long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// Wait for the job to end and print its status, then its outputs (if its template
        /// declares any) as NAME=VALUE lines; the exit code is its outcome.
        #[arg(long)]
        wait: bool,
        /// Print the job's log as it is written until the job ends; the exit code is its
        /// outcome.
        #[arg(long)]
        follow: bool,
    },
    /// Print a job's status.
    Status {
        /// The job's token.
        token: String,
        /// Wait for the job to end; the exit code is its outcome.
        #[arg(long)]
        wait: bool,
    },
    /// Print a job's log.
    Logs {
        /// The job's token.
        token: String,
        /// Keep printing as the log is written until the job ends; the exit code is its
        /// outcome.
        #[arg(long)]
        follow: bool,
        /// `text` (Otter's `LEVEL: text` lines) or `ndjson` (one JSON object per entry).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Cancel a job and print its status after.
    Cancel {
        /// The job's token.
        token: String,
    },
    /// List the newest jobs (needs an admin key): token, template, status, source, created.
    Jobs {
        /// Only jobs of this template.
        #[arg(long)]
        template: Option<String>,
        /// Only jobs with this status: Pending, Executing, Succeeded, Warning or Error.
        #[arg(long)]
        status: Option<String>,
    },
    /// List the templates and their declared variables (needs an admin key).
    Templates,
    /// Print the outputs a job recorded when it ended, as NAME=VALUE lines (values with
    /// `\`, line breaks and other control characters escaped) or one JSON object.
    Outputs {
        /// The job's token.
        token: String,
        /// `lines` (NAME=VALUE) or `json` (the server's JSON object, as it sent it).
        #[arg(long, value_enum, default_value_t = OutputsFormat::Lines)]
        format: OutputsFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputsFormat {
    Lines,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Ndjson,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // A usage error exits 3, as a refusal does: clap's own code, 2, would read as a job that
    // ended Warning to a script that runs `holt trigger --wait`.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_REFUSED } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let client = match Client::new(&cli.url) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("holt: {e}");
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let client = match cli.key {
        Some(key) => client.with_key(key),
        None => client,
    };
    match run(&client, cli.command).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A refusal prints the server's line alone, so a script can show it as it is.
            match &e {
                Error::Refused { reason, .. } => eprintln!("holt: {reason}"),
                _ => eprintln!("holt: {e}"),
            }
            ExitCode::from(match e {
                Error::Refused { .. } | Error::InvalidUrl(_) => EXIT_REFUSED,
                Error::Unreachable { .. } => EXIT_UNREACHABLE,
                _ => EXIT_ERROR,
            })
        }
    }
}

async fn run(client: &Client, command: Command) -> Result<u8, Error> {
    match command {
        Command::Trigger {
            template,
            vars,
            wait,
            follow,
        } => {
            let job = client.trigger(&template, &vars, None).await?;
            println!("{}", job.token);
            if follow {
                follow_log(client, &job.token, Format::Text).await
            } else if wait {
                let code = wait_for_end(client, &job.token).await?;
                // A holtd from before outputs answers 404: its jobs have none.
                let outputs = match client.outputs(&job.token).await {
                    Err(Error::Refused { status: 404, .. }) => Vec::new(),
                    other => other?,
                };
                print_outputs(&outputs, OutputsFormat::Lines);
                Ok(code)
            } else {
                Ok(0)
            }
        }
        Command::Status { token, wait } => {
            if wait {
                wait_for_end(client, &token).await
            } else {
                println!("{}", client.status(&token).await?);
                Ok(0)
            }
        }
        Command::Logs {
            token,
            follow,
            format,
        } => {
            if follow {
                follow_log(client, &token, format).await
            } else {
                print_log(client, &token, format, false).await?;
                Ok(0)
            }
        }
        Command::Cancel { token } => {
            let status = match client.cancel(&token).await? {
                Canceled::Stopped(status) | Canceled::AlreadyEnded(status) => status,
                Canceled::Stopping => JobStatus::Executing,
            };
            println!("{status}");
            Ok(0)
        }
        Command::Jobs { template, status } => {
            let status = match status {
                None => None,
                Some(word) => Some(word.parse::<JobStatus>().map_err(|_| Error::Refused {
                    status: 400,
                    reason: format!(
                        "status must be Pending, Executing, Succeeded, Warning or Error, not {word:?}"
                    ),
                })?),
            };
            let page = client
                .list_jobs(&JobQuery {
                    template,
                    status,
                    ..JobQuery::default()
                })
                .await?;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "TOKEN\tTEMPLATE\tSTATUS\tSOURCE\tCREATED");
            for job in page.jobs {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    job.token, job.template, job.status, job.source, job.created
                );
            }
            Ok(0)
        }
        Command::Outputs { token, format } => {
            print_outputs(&client.outputs(&token).await?, format);
            Ok(0)
        }
        Command::Templates => {
            let mut out = std::io::stdout().lock();
            for t in client.list_templates().await? {
                let _ = writeln!(
                    out,
                    "{}{}",
                    t.name,
                    t.description
                        .map(|d| format!(" - {}", d.escape_debug()))
                        .unwrap_or_default()
                );
                for v in t.variables {
                    let mut rules = Vec::new();
                    if v.required {
                        rules.push("required".to_owned());
                    }
                    if v.secret {
                        rules.push("secret".to_owned());
                    }
                    if let Some(d) = &v.default {
                        rules.push(format!("default {d:?}"));
                    }
                    if !v.allowed.is_empty() {
                        rules.push(format!("one of {:?}", v.allowed));
                    }
                    if let Some(p) = &v.pattern {
                        rules.push(format!("matching {p:?}"));
                    }
                    let _ = writeln!(out, "  {} {}", v.name, rules.join(", "));
                }
            }
            Ok(0)
        }
    }
}

/// Prints outputs: as `NAME=VALUE` lines, escaped so that each is one line, or as one JSON
/// object in the server's order.
fn print_outputs(outputs: &[(String, String)], format: OutputsFormat) {
    let mut out = std::io::stdout().lock();
    match format {
        OutputsFormat::Lines => {
            for (name, value) in outputs {
                let _ = writeln!(out, "{name}={}", escape_value(value));
            }
        }
        OutputsFormat::Json => {
            let string = |s: &str| serde_json::Value::from(s).to_string();
            let members: Vec<String> = outputs
                .iter()
                .map(|(n, v)| format!("{}:{}", string(n), string(v)))
                .collect();
            let _ = writeln!(out, "{{{}}}", members.join(","));
        }
    }
}

/// A value on one line: `\\`, `\n`, `\r`, `\t` and `\u{..}` for other control characters.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The exit code for a job's final status.
fn outcome(status: JobStatus) -> u8 {
    match status {
        JobStatus::Succeeded => 0,
        JobStatus::Warning => EXIT_WARNING,
        _ => EXIT_ERROR,
    }
}

/// Waits for the job to end, printing its final status; a spinner shows on a terminal.
async fn wait_for_end(client: &Client, token: &str) -> Result<u8, Error> {
    let spinner = Spinner::start(token);
    let status = if spinner.shown() {
        let mut status = client.status(token).await?;
        while !status.is_terminal() {
            spinner.status(status);
            status = client.wait(token, SPINNER_WAIT).await?;
        }
        status
    } else {
        client.wait_for_end(token).await?
    };
    spinner.finish();
    println!("{status}");
    Ok(outcome(status))
}

/// Prints the log as it is written until the job ends, then exits with its outcome.
async fn follow_log(client: &Client, token: &str, format: Format) -> Result<u8, Error> {
    print_log(client, token, format, true).await?;
    // The followed body ends once the job's end is committed; this reads the final status.
    let status = client.wait_for_end(token).await?;
    Ok(outcome(status))
}

async fn print_log(
    client: &Client,
    token: &str,
    format: Format,
    follow: bool,
) -> Result<(), Error> {
    let options = LogOptions {
        follow,
        format: match format {
            Format::Text => LogFormat::Text,
            Format::Ndjson => LogFormat::Ndjson,
        },
        offset: 0,
    };
    let mut log = client.logs(token, options).await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = log.chunk().await? {
        // Each piece is written and flushed as it arrives, so a reader sees the log live.
        if out.write_all(&chunk).and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): nothing more to show.
            break;
        }
    }
    Ok(())
}

/// A spinner on stderr with the job's status and the elapsed time, only when stderr is a
/// terminal: output captured by a script or CI holds no escape codes.
struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    fn start(token: &str) -> Spinner {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} job {prefix}: {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(token.to_owned());
            bar.set_message("…");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Spinner { bar }
    }

    fn shown(&self) -> bool {
        self.bar.is_some()
    }

    fn status(&self, status: JobStatus) {
        if let Some(bar) = &self.bar {
            bar.set_message(status.as_str());
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
