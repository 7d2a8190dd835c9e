//! Blocks that change how their body runs: module calls, `with` directives (async, lock,
//! retry, timeout) and awaiting async blocks.

use super::*;

impl Ctx {
    pub(super) async fn call(&mut self, name: &str, args: &[(String, Expr)]) -> Flow {
        let bare = name.rsplit_once("::").map_or(name, |(_, bare)| bare);
        let Some(module) = self.shared.modules.get(&bare.to_lowercase()).cloned() else {
            return self.raise(format!("unknown module {name}")).await;
        };
        if self.depth >= MAX_CALL_DEPTH {
            return self.raise(Limit::CallDepth).await;
        }
        let mut frame = HashMap::new();
        for (arg, expr) in args {
            let Some(param) = module
                .params
                .iter()
                .find(|p| p.var.name.eq_ignore_ascii_case(arg))
            else {
                return self
                    .raise(format!("module {} has no parameter {arg}", module.name))
                    .await;
            };
            let value = match self.eval(expr) {
                Ok(value) => value,
                Err(message) => return self.raise(message).await,
            };
            if value.sigil() != param.var.sigil {
                return self
                    .raise(format!(
                        "module {}: cannot pass {} as {}",
                        module.name,
                        value.kind(),
                        param.var
                    ))
                    .await;
            }
            frame.insert(key_of(&param.var), value);
        }
        for param in &module.params {
            let key = key_of(&param.var);
            if frame.contains_key(&key) {
                continue;
            }
            match &param.default {
                Some(expr) => match self.eval(expr) {
                    Ok(value) => {
                        frame.insert(key, value);
                    }
                    Err(message) => return self.raise(message).await,
                },
                None => {
                    return self
                        .raise(format!(
                            "module {}: missing argument {}",
                            module.name, param.var
                        ))
                        .await;
                }
            }
        }
        // A module sees its parameters and the globals, not the caller's local variables.
        let globals = self.env.globals.clone();
        let caller = std::mem::replace(
            &mut self.env,
            Env {
                frames: vec![frame],
                globals,
            },
        );
        self.depth += 1;
        let flow = self.block(&module.body).await;
        self.depth -= 1;
        self.env = caller;
        match flow {
            Err(Signal::Return) => Ok(()),
            other => other,
        }
    }

    /// Runs a `with` statement: async outermost, then lock, then retry, then timeout, so that a
    /// retried block gets a fresh timeout for each attempt.
    pub(super) async fn with(&mut self, directives: &[Directive], body: &Block) -> Flow {
        let mut settings = WithSettings::default();
        for directive in directives {
            let result = match &directive.kind {
                DirectiveKind::Async(name) => {
                    settings.async_name = Some(name.clone());
                    Ok(())
                }
                DirectiveKind::Retry(expr) => self
                    .eval_text(expr)
                    .and_then(|t| {
                        t.trim().parse::<u32>().map_err(|_| {
                            InterpError::from(format!("retry needs a whole number, found \"{t}\""))
                        })
                    })
                    .map(|n| settings.retries = n),
                DirectiveKind::Timeout(expr) => self
                    .eval_text(expr)
                    .and_then(|t| seconds(&t).map_err(|e| format!("timeout {e}").into()))
                    .map(|d| settings.timeout = Some(d)),
                DirectiveKind::Lock(expr) => {
                    self.eval_text(expr).map(|name| settings.lock = Some(name))
                }
                DirectiveKind::Unsupported(name) => {
                    Err(format!("`with {name}` is not supported by Holt").into())
                }
            };
            if let Err(message) = result {
                return self.raise(message).await;
            }
        }
        match settings.async_name.take() {
            None => self.guarded(&settings, body).await,
            Some(name) => {
                let running = self.shared.async_blocks.fetch_add(1, Ordering::Relaxed);
                if running >= MAX_ASYNC_BLOCKS {
                    self.shared.async_blocks.fetch_sub(1, Ordering::Relaxed);
                    return self.raise(Limit::AsyncBlocks).await;
                }
                let mut child = Ctx {
                    shared: self.shared.clone(),
                    env: self.env.clone(),
                    state: ExecState::Normal,
                    scope: self.scope.clone(),
                    place: self.place.clone(),
                    cancel: self.cancel.child_token(),
                    tasks: Vec::new(),
                    depth: self.depth,
                    nesting: self.nesting,
                    since_yield: 0,
                    host_values: super::files::HostValues::default(),
                };
                // The copy of the variables is a snapshot of the frames; globals stay shared.
                child.env.frames = self.env.frames.clone();
                let body = body.clone();
                let handle = tokio::spawn(async move {
                    let flow = child.guarded(&settings, &body).await;
                    let flow = flow.and(child.await_tasks(None).await);
                    child.shared.async_blocks.fetch_sub(1, Ordering::Relaxed);
                    (child.state, flow)
                });
                self.tasks.push(AsyncTask { name, handle });
                Ok(())
            }
        }
    }

    /// Lock, retry and timeout around a block.
    async fn guarded(&mut self, settings: &WithSettings, body: &Block) -> Flow {
        let _guard = match &settings.lock {
            None => None,
            Some(name) => {
                let lock = self
                    .shared
                    .locks
                    .lock()
                    .expect("locks lock")
                    .entry(name.to_lowercase())
                    .or_default()
                    .clone();
                tokio::select! {
                    guard = lock.lock_owned() => Some(guard),
                    () = self.cancel.cancelled() => return Err(Signal::Stopped),
                }
            }
        };
        let entry = self.state;
        let mut attempt = 0;
        loop {
            self.state = entry;
            let flow = match settings.timeout {
                None => self.block(body).await,
                Some(limit) => self.timed(limit, body).await,
            };
            match flow {
                Err(Signal::Raise { .. }) if attempt < settings.retries => {
                    attempt += 1;
                    let text = format!(
                        "Retrying (attempt {} of {}).",
                        attempt + 1,
                        settings.retries + 1
                    );
                    self.log(LogLevel::Debug, &text).await?;
                }
                other => return other,
            }
        }
    }

    /// Runs a block under a time limit; at the limit its work is cancelled (its processes end)
    /// and an error is raised here.
    async fn timed(&mut self, limit: Duration, body: &Block) -> Flow {
        let inner = self.cancel.child_token();
        let outer = std::mem::replace(&mut self.cancel, inner.clone());
        let finished = {
            let work = self.block(body);
            tokio::pin!(work);
            tokio::select! {
                flow = &mut work => Some(flow),
                () = tokio::time::sleep(limit) => {
                    inner.cancel();
                    // Let the work see the cancellation and end its processes before going on.
                    let _ = work.await;
                    None
                }
            }
        };
        self.cancel = outer;
        match finished {
            Some(flow) => flow,
            None => {
                self.raise(format!(
                    "Timeout of {} seconds elapsed.",
                    limit.as_secs_f64()
                ))
                .await
            }
        }
    }

    /// Waits for async blocks: all of them (`None` or `Some(None)`), or those of one name, and
    /// brings their warnings and errors home.
    pub(super) async fn await_tasks(&mut self, name: Option<Option<&str>>) -> Flow {
        let (chosen, kept): (Vec<AsyncTask>, Vec<AsyncTask>) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|task| match name {
                None | Some(None) => true,
                Some(Some(wanted)) => task
                    .name
                    .as_ref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(wanted)),
            });
        self.tasks = kept;
        self.join(chosen).await
    }

    /// Waits for the async blocks started since the first `from` tasks.
    pub(super) async fn await_from(&mut self, from: usize) -> Flow {
        let started = self.tasks.split_off(from.min(self.tasks.len()));
        self.join(started).await
    }

    async fn join(&mut self, tasks: Vec<AsyncTask>) -> Flow {
        let before = self.state;
        let mut first_error = None;
        for task in tasks {
            let (state, flow) = match task.handle.await {
                Ok(result) => result,
                Err(e) => (
                    ExecState::Failing,
                    Err(Signal::Store(StoreError::Database(Box::new(e)))),
                ),
            };
            if state > self.state {
                self.state = state;
            }
            if let Err(signal) = flow {
                let signal = match signal {
                    Signal::Raise { .. } => Signal::Raise { before },
                    Signal::Break | Signal::Continue | Signal::Return => continue,
                    other => other,
                };
                first_error.get_or_insert(signal);
            }
        }
        match first_error {
            Some(signal) => Err(signal),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct WithSettings {
    async_name: Option<Option<String>>,
    retries: u32,
    timeout: Option<Duration>,
    lock: Option<String>,
}

/// Parses a number of seconds, fractions allowed, up to a year. Refusing NaN, negatives and
/// absurd values keeps `Duration` from panicking.
pub(super) fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("needs a number of seconds, found \"{text}\""))?;
    if !(0.0..=31_536_000.0).contains(&value) {
        return Err(format!(
            "needs between 0 and 31536000 seconds, found \"{text}\""
        ));
    }
    Ok(Duration::from_secs_f64(value))
}
