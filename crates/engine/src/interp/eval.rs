//! Evaluating values, strings and predicates, and the built-in functions.

use std::collections::BTreeMap;

use holt_plan::{CmpOp, Expr, FnCall, InterpString, Part, Predicate, Sigil, StatementKind, VarRef};

use super::Ctx;
use super::value::{Value, key_of};

/// The largest list `@Range` makes, so a typo cannot exhaust memory.
const MAX_RANGE: i64 = 1_000_000;

impl Ctx {
    /// The value of an expression; the error is a message to raise.
    pub(super) fn eval(&self, expr: &Expr) -> Result<Value, String> {
        match expr {
            Expr::Str(s) => self.interpolate(s).map(Value::Scalar),
            Expr::List(items) => items
                .iter()
                .map(|e| self.eval(e))
                .collect::<Result<_, _>>()
                .map(Value::List),
            Expr::Map(entries) => {
                let mut map = BTreeMap::new();
                for (k, v) in entries {
                    map.insert(k.clone(), self.eval(v)?);
                }
                Ok(Value::Map(map))
            }
            Expr::Var(var) => self.variable(var),
            Expr::Index { target, index } => {
                let container = self.variable(target)?;
                let index = self.eval_text(index)?;
                match container {
                    Value::List(items) => {
                        let i: usize = index.trim().parse().map_err(|_| {
                            format!("{target}[{index}]: a list index is a whole number from 0")
                        })?;
                        items.get(i).cloned().ok_or_else(|| {
                            format!("{target}[{index}]: the list has {} items", items.len())
                        })
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
                        .ok_or_else(|| format!("{target}[{index}]: the map has no key {index}")),
                    Value::Scalar(_) => Err(format!("{target} is a string and cannot be indexed")),
                }
            }
            Expr::Call(call) => self.function(call),
        }
    }

    /// The value of an expression that must be a string.
    pub(super) fn eval_text(&self, expr: &Expr) -> Result<String, String> {
        match self.eval(expr)? {
            Value::Scalar(s) => Ok(s),
            other => Err(format!("expected a string, found {}", other.kind())),
        }
    }

    /// A string with its interpolations replaced by their values.
    pub(super) fn interpolate(&self, s: &InterpString) -> Result<String, String> {
        let mut out = String::new();
        for part in &s.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(var) => out.push_str(&self.variable(var)?.to_string()),
                Part::Expr(expr) => out.push_str(&self.eval(expr)?.to_string()),
            }
        }
        Ok(out)
    }

    /// A variable's value; a zero-argument function of the same name answers when no variable
    /// has it (a variable shadows a function).
    fn variable(&self, var: &VarRef) -> Result<Value, String> {
        if let Some(value) = self.env.get(&key_of(var)) {
            return Ok(value);
        }
        let call = FnCall {
            sigil: var.sigil,
            name: var.name.clone(),
            args: Vec::new(),
        };
        match self.function(&call) {
            Err(e) if e.starts_with("unknown function") => {
                Err(format!("variable {var} is not defined"))
            }
            other => other,
        }
    }

    /// Whether a predicate holds.
    pub(super) fn predicate(&self, predicate: &Predicate) -> Result<bool, String> {
        Ok(match predicate {
            Predicate::Compare { left, op, right } => {
                let equal = self.eval(left)? == self.eval(right)?;
                match op {
                    CmpOp::Eq => equal,
                    CmpOp::Ne => !equal,
                }
            }
            Predicate::And(a, b) => self.predicate(a)? && self.predicate(b)?,
            Predicate::Or(a, b) => self.predicate(a)? || self.predicate(b)?,
            Predicate::Not(a) => !self.predicate(a)?,
            Predicate::Value(expr) => self.eval_text(expr)?.trim().eq_ignore_ascii_case("true"),
        })
    }

    fn function(&self, call: &FnCall) -> Result<Value, String> {
        let name = call.name.to_ascii_lowercase();
        let shown = format!("{}{}", call.sigil.as_char(), call.name);
        let args: Vec<Value> = call
            .args
            .iter()
            .map(|a| self.eval(a))
            .collect::<Result<_, _>>()?;
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{shown} takes {n} argument{}, given {}",
                    if n == 1 { "" } else { "s" },
                    args.len()
                ))
            }
        };
        let text = |i: usize| match &args[i] {
            Value::Scalar(s) => Ok(s.clone()),
            other => Err(format!(
                "{shown}: argument {} must be a string, found {}",
                i + 1,
                other.kind()
            )),
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
                Value::Scalar(self.eval_string(&text(0)?)?)
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
                if !(0..=MAX_RANGE).contains(&count) {
                    return Err(format!(
                        "{shown}: the count must be between 0 and {MAX_RANGE}"
                    ));
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
                    Value::Scalar(_) => return Err(format!("{shown} needs a list or a map")),
                }
            }
            (Sigil::Scalar, "jobtoken") => {
                arity(0)?;
                Value::Scalar(self.shared.token.to_string())
            }
            _ => return Err(format!("unknown function {shown}")),
        };
        Ok(value)
    }

    /// `$Eval(text)`: the text read as an OtterScript string, its interpolations evaluated now.
    fn eval_string(&self, text: &str) -> Result<String, String> {
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
                Some(Expr::Str(s)) => self.interpolate(s),
                Some(other) => self.eval_text(other),
                None => Ok(String::new()),
            },
            _ => Err("$Eval: the text is not a string".to_owned()),
        }
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
