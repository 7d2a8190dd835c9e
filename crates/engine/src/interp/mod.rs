//! The interpreter: runs a plan's statements with OtterScript's execution-state rules.
//!
//! Execution state moves between normal, warning and failing; the final status follows from it.
//! Control leaves a block early through a [`Signal`]: loop and module control, a raised error
//! (catchable), `fail;` (not catchable), a stop (timeout, cancel, shutdown) or a store failure.

mod blocks;
use blocks::seconds;
pub(crate) mod error;
mod eval;
mod exec;
mod files;
mod host;
mod remote;
mod servers;
mod shell;
pub(crate) mod value;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holt_domain::{Inventory, JobToken, LogLevel, ScopePath, Server, Variables};
use holt_plan::{
    ArgValue, Block, Directive, DirectiveKind, Else, Expr, If, Operation, Param, Plan, SetScope,
    Statement, StatementKind,
};
use holt_storage::StoreError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::check::find_operation;
use crate::joblog::JobLog;
use error::{
    InterpError, Limit, MAX_ASYNC_BLOCKS, MAX_BLOCK_NESTING, MAX_CALL_DEPTH, MAX_JOB_STEPS,
};
use value::{Env, Value, key_of};

/// A job's execution state. The order matters: a later state is a worse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ExecState {
    Normal,
    Warning,
    Failing,
}

impl ExecState {
    fn word(self) -> &'static str {
        match self {
            ExecState::Normal => "normal",
            ExecState::Warning => "warning",
            ExecState::Failing => "error",
        }
    }
}

/// Why control left a block before its end.
#[derive(Debug)]
pub(crate) enum Signal {
    Break,
    Continue,
    Return,
    /// An error was raised and logged; `before` is the state just before the statement that
    /// raised it, which a `catch` restores.
    Raise {
        before: ExecState,
    },
    /// `fail;`: the job ends at once; nothing catches it.
    Fail,
    /// The work was cancelled: by a timeout around it, or the whole job by cancel or shutdown.
    Stopped,
    /// The log could not be written.
    Store(StoreError),
}

type Flow = Result<(), Signal>;
type BoxFlow<'a> = Pin<Box<dyn Future<Output = Flow> + Send + 'a>>;

/// How many statements run between two chances for other tasks to run on the same thread, so
/// a long loop of quick statements does not hold a runtime thread to itself.
const STATEMENTS_PER_YIELD: u64 = 1024;

/// Where running code is: the server, role and environment in context, if any.
#[derive(Debug, Clone, Default)]
pub(crate) struct Place {
    pub(crate) server: Option<Arc<Server>>,
    pub(crate) role: Option<String>,
    pub(crate) environment: Option<String>,
}

/// What a job knows of its servers: the inventory snapshot taken when it started, and how to
/// reach its `ssh` servers.
#[derive(Debug, Clone)]
pub(crate) struct Infra {
    pub(crate) inventory: Arc<Inventory>,
    pub(crate) credentials: Arc<holt_domain::Credentials>,
    pub(crate) known_hosts: Option<std::path::PathBuf>,
    pub(crate) connect_timeout: Duration,
    /// The mark the job's processes carry, so that a later start finds them.
    pub(crate) mark: String,
}

/// Runs a plan to its end and returns the final execution state and global variables.
/// `inventory` is the infrastructure's snapshot taken when the job started; `place` the server
/// the plan runs on, if it was targeted at one, and `scope` the log scope it runs in.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    plan: &Plan,
    token: JobToken,
    variables: &Variables,
    log: Arc<JobLog>,
    cancel: &CancellationToken,
    kill_grace: Duration,
    infra: Infra,
    place: Place,
    scope: ScopePath,
) -> Result<(ExecState, value::Globals), StoreError> {
    // Built-ins answer before any job variable; one reaching here (triggers and templates cannot
    // give one) is dropped, but for the scheduler's `ScheduledFor`, which its built-in reads.
    let globals = variables
        .iter()
        .filter(|(name, _)| !name.is_built_in() || name.key() == "scheduledfor")
        .map(|(name, value)| {
            (
                ('$', name.key().to_owned()),
                Value::Scalar(value.to_owned()),
            )
        })
        .collect();
    let modules = plan
        .body
        .statements
        .iter()
        .filter_map(|s| match &s.kind {
            StatementKind::Module { name, params, body } => Some((
                name.to_lowercase(),
                Arc::new(ModuleDef {
                    name: name.clone(),
                    params: params.clone(),
                    body: body.clone(),
                }),
            )),
            _ => None,
        })
        .collect();
    let instance = infra.mark.clone();
    let mut ctx = Ctx {
        shared: Arc::new(Shared {
            token,
            log,
            modules,
            locks: Mutex::new(HashMap::new()),
            kill_grace,
            instance,
            steps: AtomicU64::new(0),
            async_blocks: AtomicUsize::new(0),
            inventory: infra.inventory.clone(),
            infra,
            connections: Default::default(),
        }),
        env: Env {
            frames: vec![HashMap::new()],
            globals: Arc::new(Mutex::new(globals)),
        },
        state: ExecState::Normal,
        scope,
        place,
        cancel: cancel.clone(),
        tasks: Vec::new(),
        depth: 0,
        nesting: 0,
        since_yield: 0,
        host_values: files::HostValues::default(),
    };
    let flow = ctx.statements(&plan.body).await;
    // The end of a plan awaits everything still running.
    let flow = flow.and(ctx.await_tasks(None).await);
    ctx.shared.connections.close().await;
    let state = match flow {
        Ok(()) | Err(Signal::Return | Signal::Break | Signal::Continue) => ctx.state,
        Err(Signal::Raise { .. } | Signal::Fail | Signal::Stopped) => ExecState::Failing,
        Err(Signal::Store(e)) => return Err(e),
    };
    Ok((state, ctx.env.into_finals()))
}

/// What every part of a running job shares.
#[derive(Debug)]
struct Shared {
    token: JobToken,
    log: Arc<JobLog>,
    /// Declared modules by case-folded name.
    modules: HashMap<String, Arc<ModuleDef>>,
    /// `with lock=name` locks by name.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// How long a process group gets between SIGTERM and SIGKILL.
    kill_grace: Duration,
    /// The store's instance id, marked on every process.
    instance: String,
    /// The evaluation steps taken so far by every line of the job; see [`MAX_JOB_STEPS`].
    steps: AtomicU64,
    /// The async blocks started and not yet finished; see [`MAX_ASYNC_BLOCKS`].
    async_blocks: AtomicUsize,
    /// The servers, roles and environments as they were when the job started.
    inventory: Arc<Inventory>,
    /// How to reach the job's `ssh` servers.
    infra: Infra,
    /// The run's connections to its `ssh` servers, closed when it ends.
    connections: crate::ssh::master::Connections,
}

impl Shared {
    /// Counts `n` more steps of work against the job's budget.
    fn charge(&self, n: u64) -> Result<(), Limit> {
        let before = self.steps.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > MAX_JOB_STEPS {
            return Err(Limit::JobSteps);
        }
        Ok(())
    }
}

#[derive(Debug)]
struct ModuleDef {
    name: String,
    params: Vec<Param>,
    body: Block,
}

/// An async block started and not yet awaited.
#[derive(Debug)]
struct AsyncTask {
    name: Option<String>,
    handle: JoinHandle<(ExecState, Flow)>,
}

/// One line of execution: the main line, or an async block.
#[derive(Debug)]
pub(crate) struct Ctx {
    shared: Arc<Shared>,
    env: Env,
    state: ExecState,
    scope: ScopePath,
    place: Place,
    cancel: CancellationToken,
    tasks: Vec<AsyncTask>,
    /// Module calls around the running code; see [`MAX_CALL_DEPTH`].
    depth: usize,
    /// Blocks around the running code, across module calls; see [`MAX_BLOCK_NESTING`].
    nesting: usize,
    /// Statements run since this line last let other tasks run; see [`STATEMENTS_PER_YIELD`].
    since_yield: u64,
    /// What the running statement's calls to functions that look at the server gave.
    host_values: files::HostValues,
}

impl Ctx {
    /// Writes to the job's log in the current scope.
    async fn log(&self, level: LogLevel, text: &str) -> Flow {
        self.shared
            .log
            .write(level, &self.scope, text)
            .await
            .map_err(Signal::Store)
    }

    /// Logs the error, sets the failing state and raises it. An exceeded bound is not raised but
    /// ends the job at once, like `fail;`: running a `catch` or a retry would only meet it again.
    async fn raise(&mut self, error: impl Into<InterpError>) -> Flow {
        let error = error.into();
        let before = self.state;
        self.log(LogLevel::Error, &error.to_string()).await?;
        self.state = ExecState::Failing;
        if error.is_fatal() {
            return Err(Signal::Fail);
        }
        Err(Signal::Raise { before })
    }

    /// Runs a block in a new variable frame.
    fn block<'a>(&'a mut self, block: &'a Block) -> BoxFlow<'a> {
        Box::pin(async move {
            if self.nesting >= MAX_BLOCK_NESTING {
                return self.raise(Limit::BlockNesting).await;
            }
            self.nesting += 1;
            self.env.push();
            let flow = self.statements(block).await;
            self.env.pop();
            self.nesting -= 1;
            flow
        })
    }

    /// Runs statements in the current frame.
    fn statements<'a>(&'a mut self, block: &'a Block) -> BoxFlow<'a> {
        Box::pin(async move {
            for statement in &block.statements {
                if self.cancel.is_cancelled() {
                    return Err(Signal::Stopped);
                }
                if let Err(limit) = self.shared.charge(1) {
                    return self.raise(limit).await;
                }
                self.since_yield += 1;
                if self.since_yield >= STATEMENTS_PER_YIELD {
                    self.since_yield = 0;
                    tokio::task::yield_now().await;
                }
                self.statement(statement).await?;
            }
            Ok(())
        })
    }

    /// Runs one statement, inside the log scope its description names, if any.
    async fn statement(&mut self, statement: &Statement) -> Flow {
        let scoped = statement
            .description
            .as_deref()
            .and_then(|d| d.lines().next())
            .filter(|name| {
                !name.trim().is_empty()
                    && matches!(
                        statement.kind,
                        StatementKind::Operation(_)
                            | StatementKind::Block(_)
                            | StatementKind::With { .. }
                            | StatementKind::Foreach { .. }
                            | StatementKind::Target { .. }
                            | StatementKind::Try { .. }
                            | StatementKind::If(_)
                            | StatementKind::Call { .. }
                    )
            });
        let outer = scoped.map(|name| {
            let inner = self.scope.child(name.trim());
            std::mem::replace(&mut self.scope, inner)
        });
        let flow = self.statement_kind(statement).await;
        if let Some(outer) = outer {
            self.scope = outer;
        }
        flow
    }

    async fn statement_kind(&mut self, statement: &Statement) -> Flow {
        if self.needs_host_calls(statement) {
            Box::pin(self.prepare_host_calls(statement)).await?;
        }
        match &statement.kind {
            StatementKind::Operation(op) => Box::pin(self.operation(op)).await,
            StatementKind::Set {
                scope,
                target,
                value,
            } => {
                let value = match self.eval(value) {
                    Ok(v) => v,
                    Err(message) => return self.raise(message).await,
                };
                if target.sigil == holt_plan::Sigil::Scalar
                    && holt_domain::is_built_in_variable(&target.name)
                {
                    return self
                        .raise(InterpError::BuiltIn {
                            name: target.to_string(),
                        })
                        .await;
                }
                if value.sigil() != target.sigil {
                    return self
                        .raise(format!("cannot assign {} to {target}", value.kind()))
                        .await;
                }
                let key = key_of(target);
                match scope {
                    SetScope::Default => self.env.set(key, value),
                    SetScope::Local => self.env.set_local(key, value),
                    SetScope::Global => self.env.set_global(key, value),
                }
                Ok(())
            }
            StatementKind::Block(body) => self.block(body).await,
            StatementKind::With { directives, body } => Box::pin(self.with(directives, body)).await,
            StatementKind::Await(name) => self.await_tasks(Some(name.as_deref())).await,
            StatementKind::If(branch) => self.branch(branch).await,
            StatementKind::Foreach { var, source, body } => {
                let items = match self.eval(source) {
                    Ok(Value::List(items)) => items,
                    Ok(Value::Map(entries)) => entries.into_keys().map(Value::Scalar).collect(),
                    Ok(Value::Scalar(s)) => {
                        return self
                            .raise(format!("foreach needs a list, found the string \"{s}\""))
                            .await;
                    }
                    Err(message) => return self.raise(message).await,
                };
                for item in items {
                    if item.sigil() != var.sigil {
                        return self
                            .raise(format!("cannot assign {} to {var}", item.kind()))
                            .await;
                    }
                    let inner = self.scope.child(&format!("{var} = {item}"));
                    let outer = std::mem::replace(&mut self.scope, inner);
                    self.env.push();
                    self.env.set_local(key_of(var), item);
                    let flow = self.statements(body).await;
                    self.env.pop();
                    self.scope = outer;
                    match flow {
                        Ok(()) | Err(Signal::Continue) => {}
                        Err(Signal::Break) => break,
                        Err(other) => return Err(other),
                    }
                }
                Ok(())
            }
            StatementKind::Target {
                kind, target, body, ..
            } => Box::pin(self.target(*kind, target, body)).await,
            StatementKind::Unsupported { construct, .. } => {
                // The loader refuses these; a plan that got here anyway fails clearly.
                self.raise(format!("`{construct}` is not supported by Holt"))
                    .await
            }
            StatementKind::Break => Err(Signal::Break),
            StatementKind::Continue => Err(Signal::Continue),
            StatementKind::Return => Err(Signal::Return),
            StatementKind::Try { body, catch } => {
                let started = self.tasks.len();
                let flow = self.block(body).await;
                // Async blocks started inside the try finish inside it, so their errors are
                // caught here, where they began.
                let awaited = self.await_from(started).await;
                match flow.and(awaited) {
                    Err(Signal::Raise { before }) => {
                        self.state = before;
                        self.block(catch).await
                    }
                    other => other,
                }
            }
            StatementKind::Throw(message) => {
                let text = match message {
                    Some(expr) => match self.eval_text(expr) {
                        Ok(text) => text,
                        Err(message) => return self.raise(message).await,
                    },
                    None => "An error was thrown.".to_owned(),
                };
                self.raise(text).await
            }
            StatementKind::Fail => {
                self.state = ExecState::Failing;
                Err(Signal::Fail)
            }
            StatementKind::Error => {
                self.state = ExecState::Failing;
                Ok(())
            }
            StatementKind::Warn => {
                self.warn();
                Ok(())
            }
            StatementKind::ForceWarn => {
                self.state = ExecState::Warning;
                Ok(())
            }
            StatementKind::ForceNormal => {
                self.state = ExecState::Normal;
                Ok(())
            }
            // Modules are collected before the plan runs; the declaration itself does nothing.
            StatementKind::Module { .. } => Ok(()),
            StatementKind::Call { name, args } => Box::pin(self.call(name, args)).await,
        }
    }

    /// The server in context when it is reached over SSH rather than being holtd's own host.
    fn remote_server(&self) -> Option<&Arc<Server>> {
        self.place
            .server
            .as_ref()
            .filter(|s| s.server_type == holt_domain::ServerType::Ssh)
    }

    /// Moves to warning unless failing.
    fn warn(&mut self) {
        if self.state < ExecState::Warning {
            self.state = ExecState::Warning;
        }
    }

    fn branch<'a>(&'a mut self, branch: &'a If) -> BoxFlow<'a> {
        Box::pin(async move {
            let holds = match self.predicate(&branch.cond) {
                Ok(holds) => holds,
                Err(message) => return self.raise(message).await,
            };
            if holds {
                return self.block(&branch.then).await;
            }
            match branch.otherwise.as_deref() {
                None => Ok(()),
                Some(Else::Block(body)) => self.block(body).await,
                Some(Else::If { branch, .. }) => self.branch(branch).await,
            }
        })
    }

    async fn operation(&mut self, op: &Operation) -> Flow {
        let Some(spec) = find_operation(op.namespace.as_deref(), &op.name) else {
            return self.raise(format!("unknown operation {}", op.name)).await;
        };
        match spec.name {
            "Log-Debug" | "Log-Information" | "Log-Warning" | "Log-Error" => {
                let text = match self.input(op, "Text") {
                    Ok(Some(value)) => value.to_string(),
                    Ok(None) => {
                        return self
                            .raise(format!("{}: missing the text to log", spec.name))
                            .await;
                    }
                    Err(message) => return self.raise(message).await,
                };
                let level = match spec.name {
                    "Log-Debug" => LogLevel::Debug,
                    "Log-Information" => LogLevel::Info,
                    "Log-Warning" => LogLevel::Warn,
                    _ => LogLevel::Error,
                };
                self.log(level, &text).await?;
                match level {
                    LogLevel::Warn => self.warn(),
                    LogLevel::Error => self.state = ExecState::Failing,
                    LogLevel::Debug | LogLevel::Info => {}
                }
                Ok(())
            }
            "Sleep" => {
                let duration = match self.input(op, "Seconds") {
                    Ok(Some(Value::Scalar(text))) => match seconds(&text) {
                        Ok(d) => d,
                        Err(e) => return self.raise(format!("Sleep {e}")).await,
                    },
                    Ok(Some(other)) => {
                        return self
                            .raise(format!(
                                "Sleep needs a number of seconds, found {}",
                                other.kind()
                            ))
                            .await;
                    }
                    Ok(None) => return self.raise("Sleep: missing the number of seconds").await,
                    Err(message) => return self.raise(message).await,
                };
                tokio::select! {
                    () = tokio::time::sleep(duration) => Ok(()),
                    () = self.cancel.cancelled() => Err(Signal::Stopped),
                }
            }
            // Boxed: running a program is a large state machine, and keeping it out of every
            // statement's future keeps deep nesting within a thread's stack.
            "Exec" => Box::pin(self.exec(op)).await,
            "SHExec" => Box::pin(self.shexec(op)).await,
            "Create-File" | "Ensure-File" | "Ensure-Directory" | "Delete-Files" | "Copy-Files"
            | "Transfer-Files" | "Rename-File" | "Replace-Text" => {
                Box::pin(self.file_operation(spec.name, op)).await
            }
            other => {
                self.raise(format!("operation {other} cannot run here"))
                    .await
            }
        }
    }

    /// The value of an operation's input: the positional value, or the argument `name`.
    fn input(&self, op: &Operation, name: &str) -> Result<Option<Value>, InterpError> {
        let expr = match (&op.positional, op.arg(name)) {
            (Some(expr), None) => expr,
            (None, Some(ArgValue::Input(expr))) => expr,
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(format!("{}: {name} is given twice", op.name).into());
            }
            (None, Some(ArgValue::Output(_))) => {
                return Err(format!("{}: {name} is an input, not an output", op.name).into());
            }
        };
        self.eval(expr).map(Some)
    }
}

#[cfg(test)]
mod tests;
