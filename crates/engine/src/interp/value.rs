//! Runtime values and variable scopes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use holt_plan::{Sigil, VarRef};

/// A value a variable holds: a string, a list or a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `$x`
    Scalar(String),
    /// `@x`
    List(Vec<Value>),
    /// `%x`; keys in order, as written.
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// The value's kind, in the words error messages use.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// The sigil a variable holding this value takes.
    pub(crate) fn sigil(&self) -> Sigil {
        match self {
            Value::Scalar(_) => Sigil::Scalar,
            Value::List(_) => Sigil::List,
            Value::Map(_) => Sigil::Map,
        }
    }
}

impl fmt::Display for Value {
    /// The text form, used when a list or map is logged: OtterScript's literal syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(s) => f.write_str(s),
            Value::List(items) => {
                f.write_str("@(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            Value::Map(entries) => {
                f.write_str("%(")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A variable's identity: its sigil and case-folded name. `$x` and `@x` are different
/// variables; `$X` and `$x` are the same one.
pub(crate) type Key = (char, String);

pub(crate) fn key_of(var: &VarRef) -> Key {
    (var.sigil.as_char(), var.key())
}

/// A job's global variables, shared by its main line and its async blocks.
pub(crate) type Globals = Arc<Mutex<HashMap<Key, Value>>>;

/// The final value of a global variable named `name` (case ignored): `$name`, else `@name` or
/// `%name` in their literal text form. `None` when none of them was set.
pub(crate) fn final_value(globals: &Globals, name: &str) -> Option<String> {
    let globals = globals.lock().expect("globals lock");
    let key = name.to_ascii_lowercase();
    ['$', '@', '%']
        .into_iter()
        .find_map(|sigil| globals.get(&(sigil, key.clone())))
        .map(Value::to_string)
}

/// Variables visible to running code: block frames, innermost last, over the job's globals.
///
/// Globals are shared by reference between the main line and its async blocks; frames are
/// copied when an async block starts, so its assignments to them do not flow back.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    pub(crate) frames: Vec<HashMap<Key, Value>>,
    pub(crate) globals: Arc<Mutex<HashMap<Key, Value>>>,
}

impl Env {
    pub(crate) fn get(&self, key: &Key) -> Option<Value> {
        for frame in self.frames.iter().rev() {
            if let Some(v) = frame.get(key) {
                return Some(v.clone());
            }
        }
        self.globals.lock().expect("globals lock").get(key).cloned()
    }

    /// `set $x`: the nearest scope that has the variable, else the current one.
    pub(crate) fn set(&mut self, key: Key, value: Value) {
        for frame in self.frames.iter_mut().rev() {
            if let Some(slot) = frame.get_mut(&key) {
                *slot = value;
                return;
            }
        }
        let mut globals = self.globals.lock().expect("globals lock");
        if let Some(slot) = globals.get_mut(&key) {
            *slot = value;
            return;
        }
        drop(globals);
        self.set_local(key, value);
    }

    /// `set local $x`: always the current scope.
    pub(crate) fn set_local(&mut self, key: Key, value: Value) {
        match self.frames.last_mut() {
            Some(frame) => {
                frame.insert(key, value);
            }
            None => {
                self.globals
                    .lock()
                    .expect("globals lock")
                    .insert(key, value);
            }
        }
    }

    /// `set global $x`.
    pub(crate) fn set_global(&mut self, key: Key, value: Value) {
        for frame in &mut self.frames {
            frame.remove(&key);
        }
        self.globals
            .lock()
            .expect("globals lock")
            .insert(key, value);
    }

    /// The variables as the plan left them at its end: the plan's own top-level frame (where a
    /// plain `set` of a new variable puts it) over the job's globals.
    pub(crate) fn into_finals(self) -> Globals {
        if let Some(top) = self.frames.into_iter().next() {
            self.globals.lock().expect("globals lock").extend(top);
        }
        self.globals
    }

    pub(crate) fn push(&mut self) {
        self.frames.push(HashMap::new());
    }

    pub(crate) fn pop(&mut self) {
        self.frames.pop();
    }
}
