//! Evaluating values, strings and predicates, and the built-in functions.
//!
//! Every evaluation carries its [`Depth`] and charges the job's step budget, so no value, however
//! hostile, can make evaluation recurse without end, spin, or grow without bound.

use std::collections::BTreeMap;

use holt_plan::{CmpOp, Expr, FnCall, InterpString, Part, Predicate, Sigil, StatementKind, VarRef};

use super::Ctx;
use super::error::{
    InterpError, Limit, MAX_EVAL_NESTING, MAX_EXPR_DEPTH, MAX_LIST_ITEMS, MAX_STRING_BYTES,
    MAX_VALUE_NESTING,
};
use super::value::{Value, key_of};

/// How deep an evaluation is: expressions inside expressions, and `$Eval` inside `$Eval`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Depth {
    exprs: usize,
    evals: usize,
}

impl Depth {
    /// One expression deeper.
    fn expr(self) -> Result<Depth, Limit> {
        if self.exprs >= MAX_EXPR_DEPTH {
            return Err(Limit::ExprDepth);
        }
        Ok(Depth {
            exprs: self.exprs + 1,
            ..self
        })
    }

    /// One `$Eval` deeper.
    fn eval(self) -> Result<Depth, Limit> {
        if self.evals >= MAX_EVAL_NESTING {
            return Err(Limit::EvalNesting);
        }
        Ok(Depth {
            evals: self.evals + 1,
            ..self
        })
    }
}

/// Checks a value against the size bounds and returns how much work making it is worth, in
/// steps: one per item of a list or map, and one per KiB of text.
pub(super) fn measure(value: &Value) -> Result<u64, Limit> {
    fn walk(
        value: &Value,
        nesting: usize,
        items: &mut usize,
        bytes: &mut usize,
    ) -> Result<(), Limit> {
        match value {
            Value::Scalar(s) => *bytes += s.len(),
            Value::List(list) => {
                if nesting >= MAX_VALUE_NESTING {
                    return Err(Limit::ValueNesting);
                }
                *items += list.len();
                if *items > MAX_LIST_ITEMS {
                    return Err(Limit::ListItems);
                }
                for item in list {
                    walk(item, nesting + 1, items, bytes)?;
                }
            }
            Value::Map(entries) => {
                if nesting >= MAX_VALUE_NESTING {
                    return Err(Limit::ValueNesting);
                }
                *items += entries.len();
                if *items > MAX_LIST_ITEMS {
                    return Err(Limit::ListItems);
                }
                for (key, item) in entries {
                    *bytes += key.len();
                    walk(item, nesting + 1, items, bytes)?;
                }
            }
        }
        if *bytes > MAX_STRING_BYTES {
            return Err(Limit::StringBytes);
        }
        Ok(())
    }
    let (mut items, mut bytes) = (0, 0);
    walk(value, 0, &mut items, &mut bytes)?;
    Ok((items + bytes / 1024) as u64)
}

impl Ctx {
    /// The value of an expression; the error is the line to raise.
    pub(super) fn eval(&self, expr: &Expr) -> Result<Value, InterpError> {
        self.eval_in(expr, Depth::default())
    }

    /// The value of an expression that must be a string.
    pub(super) fn eval_text(&self, expr: &Expr) -> Result<String, InterpError> {
        self.eval_text_in(expr, Depth::default())
    }

    /// Whether a predicate holds.
    pub(super) fn predicate(&self, predicate: &Predicate) -> Result<bool, InterpError> {
        self.predicate_in(predicate, Depth::default())
    }

    fn eval_in(&self, expr: &Expr, depth: Depth) -> Result<Value, InterpError> {
        let depth = depth.expr()?;
        self.shared.charge(1)?;
        let value = match expr {
            Expr::Str(s) => Value::Scalar(self.interpolate_in(s, depth)?),
            Expr::List(items) => Value::List(
                items
                    .iter()
                    .map(|e| self.eval_in(e, depth))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Map(entries) => {
                let mut map = BTreeMap::new();
                for (k, v) in entries {
                    map.insert(k.clone(), self.eval_in(v, depth)?);
                }
                Value::Map(map)
            }
            Expr::Var(var) => self.variable_in(var, depth)?,
            Expr::Index { target, index } => {
                let container = self.variable_in(target, depth)?;
                let index = self.eval_text_in(index, depth)?;
                match container {
                    Value::List(items) => {
                        let i: usize = index.trim().parse().map_err(|_| {
                            format!("{target}[{index}]: a list index is a whole number from 0")
                        })?;
                        items.get(i).cloned().ok_or_else(|| {
                            format!("{target}[{index}]: the list has {} items", items.len())
                        })?
                    }
                    Value::Map(entries) => entries
                        .get(&index)
                        .or_else(|| {
                            entries
                                .iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(&index))
                                .map(|(_, v)| v)
                        })
                        .cloned()
                        .ok_or_else(|| format!("{target}[{index}]: the map has no key {index}"))?,
                    Value::Scalar(_) => {
                        return Err(format!("{target} is a string and cannot be indexed").into());
                    }
                }
            }
            Expr::Call(call) => self.function_in(call, depth)?,
        };
        self.shared.charge(measure(&value)?)?;
        Ok(value)
    }

    fn eval_text_in(&self, expr: &Expr, depth: Depth) -> Result<String, InterpError> {
        match self.eval_in(expr, depth)? {
            Value::Scalar(s) => Ok(s),
            other => Err(format!("expected a string, found {}", other.kind()).into()),
        }
    }

    /// A string with its interpolations replaced by their values.
    fn interpolate_in(&self, s: &InterpString, depth: Depth) -> Result<String, InterpError> {
        let mut out = String::new();
        for part in &s.parts {
            let value;
            let piece = match part {
                Part::Text(text) => text.as_str(),
                Part::Var(var) => {
                    value = self.variable_in(var, depth)?.to_string();
                    value.as_str()
                }
                Part::Expr(expr) => {
                    value = self.eval_in(expr, depth)?.to_string();
                    value.as_str()
                }
            };
            if out.len() + piece.len() > MAX_STRING_BYTES {
                return Err(Limit::StringBytes.into());
            }
            out.push_str(piece);
        }
        Ok(out)
    }

    /// A variable's value. The built-in variables answer first, whatever the job's variables
    /// say; otherwise a variable answers, and a zero-argument function of the same name answers
    /// when no variable has it (a variable shadows a function).
    fn variable_in(&self, var: &VarRef, depth: Depth) -> Result<Value, InterpError> {
        let call = FnCall {
            sigil: var.sigil,
            name: var.name.clone(),
            args: Vec::new(),
        };
        if var.sigil == Sigil::Scalar && holt_domain::is_built_in_variable(&var.name) {
            return self.function_in(&call, depth);
        }
        if let Some(value) = self.env.get(&key_of(var)) {
            return Ok(value);
        }
        if var.sigil == Sigil::Scalar
            && let Some(value) = self.server_variable(&var.name)
        {
            return Ok(Value::Scalar(value));
        }
        if super::files::is_host_variable(var) {
            return self.host_variable(var);
        }
        match self.function_in(&call, depth) {
            Err(InterpError::UnknownFunction { .. }) => Err(InterpError::UndefinedVariable {
                name: var.to_string(),
            }),
            other => other,
        }
    }

    fn predicate_in(&self, predicate: &Predicate, depth: Depth) -> Result<bool, InterpError> {
        let depth = depth.expr()?;
        Ok(match predicate {
            Predicate::Compare { left, op, right } => {
                let equal = self.eval_in(left, depth)? == self.eval_in(right, depth)?;
                match op {
                    CmpOp::Eq => equal,
                    CmpOp::Ne => !equal,
                }
            }
            Predicate::And(a, b) => self.predicate_in(a, depth)? && self.predicate_in(b, depth)?,
            Predicate::Or(a, b) => self.predicate_in(a, depth)? || self.predicate_in(b, depth)?,
            Predicate::Not(a) => !self.predicate_in(a, depth)?,
            Predicate::Value(expr) => self
                .eval_text_in(expr, depth)?
                .trim()
                .eq_ignore_ascii_case("true"),
        })
    }

    fn function_in(&self, call: &FnCall, depth: Depth) -> Result<Value, InterpError> {
        let name = call.name.to_ascii_lowercase();
        if super::files::is_host_function(call) {
            let args: Vec<Value> = call
                .args
                .iter()
                .map(|a| self.eval_in(a, depth))
                .collect::<Result<_, _>>()?;
            return self.host_value(call, &args);
        }
        let shown = format!("{}{}", call.sigil.as_char(), call.name);
        let args: Vec<Value> = call
            .args
            .iter()
            .map(|a| self.eval_in(a, depth))
            .collect::<Result<_, _>>()?;
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(InterpError::Message(format!(
                    "{shown} takes {n} argument{}, given {}",
                    if n == 1 { "" } else { "s" },
                    args.len()
                )))
            }
        };
        let text = |i: usize| match &args[i] {
            Value::Scalar(s) => Ok(s.clone()),
            other => Err(InterpError::Message(format!(
                "{shown}: argument {} must be a string, found {}",
                i + 1,
                other.kind()
            ))),
        };
        let value = match (call.sigil, name.as_str()) {
            (Sigil::Scalar, "toupper") => {
                arity(1)?;
                Value::Scalar(text(0)?.to_uppercase())
            }
            (Sigil::Scalar, "tolower") => {
                arity(1)?;
                Value::Scalar(text(0)?.to_lowercase())
            }
            (Sigil::Scalar, "trim") => {
                arity(1)?;
                Value::Scalar(text(0)?.trim().to_owned())
            }
            (Sigil::Scalar, "eval") => {
                arity(1)?;
                Value::Scalar(self.eval_string(&text(0)?, depth.eval()?)?)
            }
            (Sigil::Scalar, "executionstate") => {
                arity(0)?;
                Value::Scalar(self.state.word().to_owned())
            }
            (Sigil::Scalar, "isvariabledefined") => {
                arity(1)?;
                let name = text(0)?;
                let (sigil, bare) = match name.chars().next().and_then(sigil_of) {
                    Some(sigil) => (sigil, name[1..].to_owned()),
                    None => (Sigil::Scalar, name.clone()),
                };
                let var = VarRef { sigil, name: bare };
                Value::Scalar(self.env.get(&key_of(&var)).is_some().to_string())
            }
            (Sigil::List, "range") => {
                arity(2)?;
                let start: i64 = text(0)?
                    .trim()
                    .parse()
                    .map_err(|_| format!("{shown}: the start must be a whole number"))?;
                let count: i64 = text(1)?
                    .trim()
                    .parse()
                    .map_err(|_| format!("{shown}: the count must be a whole number"))?;
                if count < 0 {
                    return Err(format!("{shown}: the count must not be negative").into());
                }
                if count > MAX_LIST_ITEMS as i64 {
                    return Err(Limit::ListItems.into());
                }
                let end = start
                    .checked_add(count)
                    .ok_or_else(|| format!("{shown}: the range overflows"))?;
                Value::List((start..end).map(|i| Value::Scalar(i.to_string())).collect())
            }
            (Sigil::Scalar, "count") => {
                arity(1)?;
                match &args[0] {
                    Value::List(items) => Value::Scalar(items.len().to_string()),
                    Value::Map(entries) => Value::Scalar(entries.len().to_string()),
                    Value::Scalar(_) => {
                        return Err(format!("{shown} needs a list or a map").into());
                    }
                }
            }
            (Sigil::Scalar, "pathcombine") => {
                if args.is_empty() {
                    return Err(format!("{shown} takes at least one argument").into());
                }
                let parts = (0..args.len()).map(text).collect::<Result<Vec<_>, _>>()?;
                Value::Scalar(super::files::path_combine(&parts))
            }
            (Sigil::Scalar, "jobtoken") => {
                arity(0)?;
                Value::Scalar(self.shared.token.to_string())
            }
            (Sigil::Scalar, "scheduledfor") => {
                arity(0)?;
                // The scheduler's value, kept among the globals (see `interp::run`), which a
                // plan cannot assign; empty in a job no schedule made.
                let key = ('$', "scheduledfor".to_owned());
                let globals = self.env.globals.lock().expect("globals lock");
                match globals.get(&key) {
                    Some(Value::Scalar(slot)) => Value::Scalar(slot.clone()),
                    _ => Value::Scalar(String::new()),
                }
            }
            (Sigil::Scalar, "servername") => {
                arity(0)?;
                Value::Scalar(self.server_name())
            }
            (Sigil::Scalar, "rolename") => {
                arity(0)?;
                Value::Scalar(self.place.role.clone().unwrap_or_default())
            }
            (Sigil::Scalar, "environmentname") => {
                arity(0)?;
                Value::Scalar(self.place.environment.clone().unwrap_or_default())
            }
            (
                Sigil::List,
                "serversinrole" | "serversinenvironment" | "serversinroleandenvironment",
            ) => {
                let wanted = if name == "serversinroleandenvironment" {
                    2
                } else {
                    1
                };
                if args.len() > wanted + 1 {
                    return Err(format!("{shown} takes at most {} arguments", wanted + 1).into());
                }
                let given = |i: usize| -> Result<Option<String>, InterpError> {
                    if i < args.len() {
                        Ok(Some(text(i)?).filter(|t| !t.is_empty()))
                    } else {
                        Ok(None)
                    }
                };
                let inactive =
                    given(wanted)?.is_some_and(|t| t.trim().eq_ignore_ascii_case("true"));
                let role = || {
                    given(0)?
                        .or_else(|| self.place.role.clone())
                        .ok_or_else(|| {
                            InterpError::from(format!("{shown}: no role given and none in context"))
                        })
                };
                let environment = |i: usize| {
                    given(i)?
                        .or_else(|| self.place.environment.clone())
                        .ok_or_else(|| {
                            InterpError::from(format!(
                                "{shown}: no environment given and none in context"
                            ))
                        })
                };
                let inventory = &self.shared.inventory;
                let servers = match name.as_str() {
                    "serversinrole" => inventory.servers_in_role(&role()?, inactive),
                    "serversinenvironment" => {
                        inventory.servers_in_environment(&environment(0)?, inactive)
                    }
                    _ => {
                        let in_environment: Vec<_> = inventory
                            .servers_in_environment(&environment(1)?, inactive)
                            .into_iter()
                            .map(|s| s.name.clone())
                            .collect();
                        inventory
                            .servers_in_role(&role()?, inactive)
                            .into_iter()
                            .filter(|s| in_environment.contains(&s.name))
                            .collect()
                    }
                };
                names_list(servers.into_iter().map(|s| s.name.as_str()))
            }
            (Sigil::List, "allservers") => {
                if args.len() > 1 {
                    return Err(format!("{shown} takes at most 1 argument").into());
                }
                let inactive = !args.is_empty() && text(0)?.trim().eq_ignore_ascii_case("true");
                names_list(
                    self.shared
                        .inventory
                        .servers()
                        .filter(|s| s.active || inactive)
                        .map(|s| s.name.as_str()),
                )
            }
            (Sigil::List, "allroles") => {
                arity(0)?;
                names_list(self.shared.inventory.roles().map(|r| r.name.as_str()))
            }
            (Sigil::List, "allenvironments") => {
                arity(0)?;
                names_list(
                    self.shared
                        .inventory
                        .environments()
                        .map(|e| e.name.as_str()),
                )
            }
            _ => return Err(InterpError::UnknownFunction { name: shown }),
        };
        Ok(value)
    }

    /// `$Eval(text)`: the text read as an OtterScript string, its interpolations evaluated now.
    fn eval_string(&self, text: &str, depth: Depth) -> Result<String, InterpError> {
        // The text is parsed as the body of a swim string whose sentinel it does not contain.
        let sentinel = [">>", ">-->", ">--->", ">---->", ">----->", ">------>"]
            .into_iter()
            .find(|s| !text.contains(s))
            .ok_or("$Eval: the text contains every swim-string sentinel")?;
        let plan =
            holt_plan::parse(&format!("Log-Debug {sentinel}{text}{sentinel};")).map_err(|d| {
                format!(
                    "$Eval: {}",
                    d.0.first().map_or(String::new(), |d| d.message.clone())
                )
            })?;
        match plan.body.statements.first().map(|s| &s.kind) {
            Some(StatementKind::Operation(op)) => match &op.positional {
                Some(Expr::Str(s)) => self.interpolate_in(s, depth),
                Some(other) => self.eval_text_in(other, depth),
                None => Ok(String::new()),
            },
            _ => Err("$Eval: the text is not a string".into()),
        }
    }
}

/// Names as a list value.
fn names_list<'a>(names: impl Iterator<Item = &'a str>) -> Value {
    Value::List(names.map(|n| Value::Scalar(n.to_owned())).collect())
}

impl Ctx {
    /// The name of the server in context: `localhost` when the plan targets none.
    pub(super) fn server_name(&self) -> String {
        self.place.server.as_ref().map_or_else(
            || holt_domain::LOCALHOST.to_owned(),
            |s| s.name.as_str().to_owned(),
        )
    }

    /// A variable of the infrastructure, after the plan's and the job's: the server in
    /// context's, then its roles' (in name order), then its environments' and their parents'.
    fn server_variable(&self, name: &str) -> Option<String> {
        let inventory = &self.shared.inventory;
        let server = match &self.place.server {
            Some(server) => server.as_ref(),
            None => inventory.server(holt_domain::LOCALHOST)?,
        };
        let find = |vars: &holt_domain::InfraVariables| {
            vars.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if let Some(value) = find(&server.variables) {
            return Some(value);
        }
        let mut roles: Vec<_> = server.roles.iter().collect();
        roles.sort();
        for role in roles {
            if let Some(value) = inventory
                .role(role.as_str())
                .and_then(|r| find(&r.variables))
            {
                return Some(value);
            }
        }
        for environment in &server.environments {
            let mut current = inventory.environment(environment.as_str());
            let mut steps = 0;
            while let Some(env) = current {
                if let Some(value) = find(&env.variables) {
                    return Some(value);
                }
                steps += 1;
                if steps > inventory.environments().count() {
                    break;
                }
                current = env
                    .parent_name
                    .as_ref()
                    .and_then(|p| inventory.environment(p.as_str()));
            }
        }
        None
    }
}

fn sigil_of(c: char) -> Option<Sigil> {
    match c {
        '$' => Some(Sigil::Scalar),
        '@' => Some(Sigil::List),
        '%' => Some(Sigil::Map),
        _ => None,
    }
}
