//! The functions that look at the server (`$FileExists`, `$FileContents`, `$SHEval`, ...):
//! run before the statement that calls them, their values then looked up by evaluation.

use super::*;

/// The functions that run a script on the server, by case-folded name.
const HOST_FUNCTIONS: &[&str] = &[
    "fileexists",
    "directoryexists",
    "filecontents",
    "environmentvariable",
    "sheval",
];

/// Whether a call is to a function that runs a script on the server.
pub(in crate::interp) fn is_host_function(call: &FnCall) -> bool {
    call.sigil == Sigil::Scalar
        && HOST_FUNCTIONS
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&call.name))
}

/// `$WorkingDirectory`, written without parentheses: a variable of that name shadows it.
pub(in crate::interp) fn is_host_variable(var: &VarRef) -> bool {
    var.sigil == Sigil::Scalar && var.name.eq_ignore_ascii_case("WorkingDirectory")
}

/// A place in the plan where a function that looks at the server is called.
#[derive(Clone, Copy)]
enum Site<'a> {
    Call(&'a FnCall),
    /// `$WorkingDirectory`.
    Var(&'a VarRef),
}

/// The results of the host function calls of the statement about to run, by the call's place
/// in the plan and its arguments' values.
#[derive(Debug, Default)]
pub(crate) struct HostValues {
    values: HashMap<(usize, Vec<String>), Result<String, String>>,
}

fn call_key(call: &FnCall, args: Vec<String>) -> (usize, Vec<String>) {
    (std::ptr::from_ref(call) as usize, args)
}

/// The host function calls in an expression, innermost first.
fn calls_in<'a>(expr: &'a Expr, out: &mut Vec<Site<'a>>) {
    match expr {
        Expr::Str(s) => {
            for part in &s.parts {
                match part {
                    Part::Expr(e) => calls_in(e, out),
                    Part::Var(var) if is_host_variable(var) => out.push(Site::Var(var)),
                    Part::Var(_) | Part::Text(_) => {}
                }
            }
        }
        Expr::List(items) => items.iter().for_each(|e| calls_in(e, out)),
        Expr::Map(entries) => entries.iter().for_each(|(_, e)| calls_in(e, out)),
        Expr::Var(var) => {
            if is_host_variable(var) {
                out.push(Site::Var(var));
            }
        }
        Expr::Index { index, .. } => calls_in(index, out),
        Expr::Call(call) => {
            call.args.iter().for_each(|e| calls_in(e, out));
            if is_host_function(call) {
                out.push(Site::Call(call));
            }
        }
    }
}

fn calls_in_predicate<'a>(predicate: &'a Predicate, out: &mut Vec<Site<'a>>) {
    match predicate {
        Predicate::Compare { left, right, .. } => {
            calls_in(left, out);
            calls_in(right, out);
        }
        Predicate::And(a, b) | Predicate::Or(a, b) => {
            calls_in_predicate(a, out);
            calls_in_predicate(b, out);
        }
        Predicate::Not(a) => calls_in_predicate(a, out),
        Predicate::Value(e) => calls_in(e, out),
    }
}

/// The host function calls a statement evaluates itself (not those of the blocks it runs,
/// which are prepared as their own statements run); for an `if`, those of every condition of
/// its `else if` chain, which are evaluated with no statement between.
fn calls_in_statement(statement: &Statement) -> Vec<Site<'_>> {
    let mut out = Vec::new();
    match &statement.kind {
        StatementKind::Operation(op) => {
            if let Some(e) = &op.positional {
                calls_in(e, &mut out);
            }
            for arg in &op.args {
                if let ArgValue::Input(e) = &arg.value {
                    calls_in(e, &mut out);
                }
            }
        }
        StatementKind::Set { value, .. } => calls_in(value, &mut out),
        StatementKind::Foreach { source, .. } => calls_in(source, &mut out),
        StatementKind::Throw(Some(e)) => calls_in(e, &mut out),
        StatementKind::Call { args, .. } => args.iter().for_each(|(_, e)| calls_in(e, &mut out)),
        StatementKind::With { directives, .. } => {
            for d in directives {
                if let DirectiveKind::Retry(e)
                | DirectiveKind::Timeout(e)
                | DirectiveKind::Lock(e) = &d.kind
                {
                    calls_in(e, &mut out);
                }
            }
        }
        StatementKind::If(branch) => {
            let mut next: Option<&If> = Some(branch);
            while let Some(b) = next {
                calls_in_predicate(&b.cond, &mut out);
                next = match b.otherwise.as_deref() {
                    Some(Else::If { branch, .. }) => Some(branch),
                    _ => None,
                };
            }
        }
        _ => {}
    }
    out
}

impl Ctx {
    /// Runs the host function calls of a statement about to run and keeps their results for
    /// its evaluation; see the module's documentation.
    ///
    /// Call it only when [`Ctx::needs_host_calls`] says so: most statements have no such call,
    /// and then need neither the walk's future nor its allocation.
    pub(in crate::interp) async fn prepare_host_calls(&mut self, statement: &Statement) -> Flow {
        for site in calls_in_statement(statement) {
            let call = match site {
                Site::Call(call) => call,
                Site::Var(var) => {
                    if self.env.get(&key_of(var)).is_some() {
                        continue;
                    }
                    let result = match self.run_ok("pwd", Vec::new(), None).await {
                        Ok(out) => Ok(String::from_utf8_lossy(&out.stdout)
                            .trim_end_matches('\n')
                            .to_owned()),
                        Err(Fail::Message(message)) => Err(message),
                        Err(Fail::Interp(error)) => Err(error.to_string()),
                        Err(Fail::Signal(signal)) => return Err(signal),
                    };
                    self.host_values
                        .values
                        .insert((std::ptr::from_ref(var) as usize, Vec::new()), result);
                    continue;
                }
            };
            // Arguments that cannot be evaluated now cannot be when the statement runs
            // either; evaluation then reports that, so nothing is run for them here.
            let Ok(args) = call
                .args
                .iter()
                .map(|a| self.eval_text(a))
                .collect::<Result<Vec<_>, _>>()
            else {
                continue;
            };
            let result = match self.host_call(call, &args).await {
                Ok(value) => Ok(value),
                Err(Fail::Message(message)) => Err(message),
                Err(Fail::Interp(error)) => Err(error.to_string()),
                Err(Fail::Signal(signal)) => return Err(signal),
            };
            self.host_values.values.insert(call_key(call, args), result);
        }
        Ok(())
    }

    /// Forgets the previous statement's results, and says whether this statement has calls to
    /// prepare. A statement without any never looks a result up, so nothing stale is read.
    pub(in crate::interp) fn needs_host_calls(&mut self, statement: &Statement) -> bool {
        if !self.host_values.values.is_empty() {
            self.host_values.values.clear();
        }
        !calls_in_statement(statement).is_empty()
    }

    /// The result kept for a host function call, for evaluation.
    pub(in crate::interp) fn host_value(
        &self,
        call: &FnCall,
        args: &[Value],
    ) -> Result<Value, InterpError> {
        let shown = format!("${}", call.name);
        let args = args
            .iter()
            .map(|a| match a {
                Value::Scalar(s) => Ok(s.clone()),
                other => Err(format!(
                    "{shown}: arguments must be strings, found {}",
                    other.kind()
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        match self.host_values.values.get(&call_key(call, args)) {
            Some(Ok(value)) => Ok(Value::Scalar(value.clone())),
            Some(Err(message)) => Err(format!("{shown}: {message}").into()),
            None => Err(format!(
                "{shown} looks at the server, and can only be used in a statement's own values (not in $Eval text or a module parameter's default)"
            )
            .into()),
        }
    }

    /// The value kept for `$WorkingDirectory` at this place in the plan.
    pub(in crate::interp) fn host_variable(&self, var: &VarRef) -> Result<Value, InterpError> {
        match self
            .host_values
            .values
            .get(&(std::ptr::from_ref(var) as usize, Vec::new()))
        {
            Some(Ok(value)) => Ok(Value::Scalar(value.clone())),
            Some(Err(message)) => Err(format!("$WorkingDirectory: {message}").into()),
            None => Err(
                "$WorkingDirectory looks at the server, and can only be used in a statement's own values (not in $Eval text or a module parameter's default)"
                    .into(),
            ),
        }
    }

    /// Runs one host function call on the server.
    async fn host_call(&mut self, call: &FnCall, args: &[String]) -> Result<String, Fail> {
        let name = call.name.to_ascii_lowercase();
        let arity = |min: usize, max: usize| {
            if (min..=max).contains(&args.len()) {
                Ok(())
            } else if min == max {
                Err(Fail::Message(format!(
                    "takes {min} argument{}, given {}",
                    if min == 1 { "" } else { "s" },
                    args.len()
                )))
            } else {
                Err(Fail::Message(format!(
                    "takes {min} to {max} arguments, given {}",
                    args.len()
                )))
            }
        };
        match name.as_str() {
            "fileexists" | "directoryexists" => {
                arity(1, 1)?;
                let test = if name == "fileexists" { "-f" } else { "-d" };
                let out = self
                    .run_ok(
                        r#"if [ "$HOLT_TEST" "$HOLT_PATH" ]; then printf true; else printf false; fi"#,
                        vec![env("HOLT_TEST", test), env("HOLT_PATH", &resolve(&args[0])?)],
                        None,
                    )
                    .await?;
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            "filecontents" => {
                arity(1, 2)?;
                let max = match args.get(1) {
                    None => None,
                    Some(n) => Some(n.trim().parse::<usize>().map_err(|_| {
                        format!("the most characters to read must be a whole number, found \"{n}\"")
                    })?),
                };
                let out = self
                    .run_ok(
                        r#"if [ ! -f "$HOLT_PATH" ]; then echo "no such file" >&2; exit 1; fi
cat "$HOLT_PATH""#,
                        vec![env("HOLT_PATH", &resolve(&args[0])?)],
                        None,
                    )
                    .await?;
                let text = String::from_utf8(out.stdout)
                    .map_err(|_| "the file is not UTF-8 text".to_owned())?;
                Ok(match max {
                    Some(max) => text.chars().take(max).collect(),
                    None => text,
                })
            }
            "environmentvariable" => {
                arity(1, 1)?;
                // The name is checked to be a variable's name before the script reads the
                // variable it names, so the indirection cannot be more than that.
                let out = self
                    .run_ok(
                        r#"case "$HOLT_NAME" in ''|[0-9]*|*[!A-Za-z0-9_]*) echo "not a variable name" >&2; exit 1;; esac
eval "holt_v=\${$HOLT_NAME-}"
printf '%s' "$holt_v""#,
                        vec![env("HOLT_NAME", &args[0])],
                        None,
                    )
                    .await?;
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            _ => {
                arity(1, 1)?;
                let script = self.sheval_script(&call.args[0])?;
                let out = self.run_ok(&script.text, script.env, None).await?;
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            }
        }
    }

    /// `$SHEval`'s script: the plan's text, each interpolated value passed in the environment
    /// as `SHExec` passes them.
    fn sheval_script(&self, expr: &Expr) -> Result<shell::Script, Fail> {
        match self.script(expr) {
            Ok(script) => Ok(script),
            // The script rules are SHExec's; the message speaks for $SHEval.
            Err(InterpError::Message(message)) => Err(message.replace("SHExec: ", "").into()),
            Err(e) => Err(e.into()),
        }
    }
}
