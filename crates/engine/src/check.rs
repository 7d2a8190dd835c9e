//! Load-time checks of a template's plan: what the parser cannot know, because it depends on
//! which operations, modules and constructs this engine runs.

use std::collections::HashSet;

use holt_domain::{Template, TemplateDiagnostic};
use holt_plan::{
    ArgValue, Block, Diagnostic, DirectiveKind, Else, Plan, Pos, Sigil, StatementKind, VarRef,
};

/// An operation the engine runs: its name and the named arguments it takes (besides the
/// positional value, which every operation here accepts).
#[derive(Debug)]
pub struct OperationSpec {
    /// The name, as documented.
    pub name: &'static str,
    /// The named arguments, as documented; matched ignoring case.
    pub args: &'static [&'static str],
    /// The outputs (`Name => $var`) it can write.
    pub outputs: &'static [&'static str],
}

/// Every operation the engine runs.
pub const OPERATIONS: &[OperationSpec] = &[
    OperationSpec {
        name: "Log-Debug",
        args: &["Text"],
        outputs: &[],
    },
    OperationSpec {
        name: "Log-Information",
        args: &["Text"],
        outputs: &[],
    },
    OperationSpec {
        name: "Log-Warning",
        args: &["Text"],
        outputs: &[],
    },
    OperationSpec {
        name: "Log-Error",
        args: &["Text"],
        outputs: &[],
    },
    OperationSpec {
        name: "Sleep",
        args: &["Seconds"],
        outputs: &[],
    },
    OperationSpec {
        name: "Exec",
        args: &[
            "FileName",
            "Arguments",
            "WorkingDirectory",
            "SuccessExitCode",
            "OutputLogLevel",
            "ErrorOutputLogLevel",
        ],
        outputs: &[],
    },
    OperationSpec {
        name: "SHExec",
        args: &[
            "Text",
            "WorkingDirectory",
            "SuccessExitCode",
            "OutputLogLevel",
            "ErrorOutputLogLevel",
        ],
        outputs: &[],
    },
    OperationSpec {
        name: "Create-File",
        args: &["Name", "Text", "Overwrite", "FileMode"],
        outputs: &[],
    },
    OperationSpec {
        name: "Ensure-File",
        args: &["Name", "Text", "Exists", "ReadOnly"],
        outputs: &[],
    },
    OperationSpec {
        name: "Ensure-Directory",
        args: &["Name", "Exists"],
        outputs: &[],
    },
    OperationSpec {
        name: "Delete-Files",
        args: &["Include", "Exclude", "Directory", "Verbose"],
        outputs: &[],
    },
    OperationSpec {
        name: "Copy-Files",
        args: &["Include", "Exclude", "From", "To", "Overwrite", "Verbose"],
        outputs: &[],
    },
    OperationSpec {
        name: "Transfer-Files",
        args: &[
            "Include",
            "Exclude",
            "FromDirectory",
            "ToDirectory",
            "DeleteTarget",
            "FromServer",
            "ToServer",
            "Verbose",
        ],
        outputs: &[],
    },
    OperationSpec {
        name: "Rename-File",
        args: &["From", "To", "Overwrite"],
        outputs: &[],
    },
    OperationSpec {
        name: "Replace-Text",
        args: &[
            "Include",
            "Exclude",
            "Directory",
            "SearchText",
            "ReplaceWith",
            "Regex",
        ],
        outputs: &[],
    },
];

/// The namespaces an operation or module name may carry; `InedoCore::Exec` is `Exec` and
/// `Files::Copy-Files` is `Copy-Files`.
const NAMESPACES: &[&str] = &["InedoCore", "Files"];

/// The operation a name stands for, if the engine runs one by that name.
pub(crate) fn find_operation(
    namespace: Option<&str>,
    name: &str,
) -> Option<&'static OperationSpec> {
    if namespace.is_some_and(|ns| !NAMESPACES.iter().any(|k| k.eq_ignore_ascii_case(ns))) {
        return None;
    }
    OPERATIONS
        .iter()
        .find(|op| op.name.eq_ignore_ascii_case(name))
}

/// Everything in a template's plan that this engine cannot run, each at its position in the
/// template file. `holtd` refuses to start with any, and `holtd check` lists them.
pub fn check_template(template: &Template) -> Vec<TemplateDiagnostic> {
    let found = check_plan(&template.plan);
    // The template's own diagnostics are in file coordinates; the plan's are moved there by the
    // same rule the template loader uses for syntax errors.
    found
        .into_iter()
        .map(|d| {
            let (line, column) = template.plan_position_in_file(d.pos.line, d.pos.column);
            TemplateDiagnostic {
                line,
                column,
                message: d.message,
            }
        })
        .collect()
}

/// Everything in a plan that this engine cannot run.
pub fn check_plan(plan: &Plan) -> Vec<Diagnostic> {
    let mut checker = Checker {
        modules: HashSet::new(),
        found: Vec::new(),
    };
    collect_modules(&plan.body, &mut checker.modules);
    checker.block(&plan.body, 0);
    checker.found.sort_by_key(|d| d.pos);
    checker.found
}

struct Checker {
    /// Declared module names, case-folded.
    modules: HashSet<String>,
    found: Vec<Diagnostic>,
}

fn collect_modules(block: &Block, modules: &mut HashSet<String>) {
    for statement in &block.statements {
        if let StatementKind::Module { name, .. } = &statement.kind {
            modules.insert(name.to_lowercase());
        }
    }
}

impl Checker {
    fn report(&mut self, pos: Pos, message: String) {
        self.found.push(Diagnostic::new(pos, message));
    }

    /// Reports a variable the plan would assign when it is a built-in one, which only the
    /// engine sets.
    fn assigned(&mut self, pos: Pos, var: &VarRef) {
        if var.sigil == Sigil::Scalar && holt_domain::is_built_in_variable(&var.name) {
            self.report(
                pos,
                format!("{var} is a built-in variable and cannot be set"),
            );
        }
    }

    /// `loops` counts the `foreach` statements around the block, for `break` and `continue`.
    fn block(&mut self, block: &Block, loops: usize) {
        for statement in &block.statements {
            let pos = statement.pos;
            match &statement.kind {
                StatementKind::Operation(op) => {
                    let shown = match &op.namespace {
                        Some(ns) => format!("{ns}::{}", op.name),
                        None => op.name.clone(),
                    };
                    match find_operation(op.namespace.as_deref(), &op.name) {
                        None => self.report(op.pos, format!("unknown operation `{shown}`")),
                        Some(spec) => {
                            for arg in &op.args {
                                if let ArgValue::Output(var) = &arg.value {
                                    self.assigned(op.pos, var);
                                }
                                let known = match &arg.value {
                                    ArgValue::Input(_) => spec.args,
                                    ArgValue::Output(_) => spec.outputs,
                                };
                                if !known.iter().any(|k| k.eq_ignore_ascii_case(&arg.name)) {
                                    let kind = match arg.value {
                                        ArgValue::Input(_) => "argument",
                                        ArgValue::Output(_) => "output",
                                    };
                                    self.report(
                                        op.pos,
                                        format!(
                                            "operation `{}` has no {kind} `{}`",
                                            spec.name, arg.name
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
                StatementKind::Block(body) => self.block(body, loops),
                StatementKind::With { directives, body } => {
                    for directive in directives {
                        if let DirectiveKind::Unsupported(name) = &directive.kind {
                            self.report(
                                directive.pos,
                                format!("`with {name}` is not supported by Holt"),
                            );
                        }
                    }
                    self.block(body, loops);
                }
                StatementKind::If(branch) => {
                    let mut branch = branch;
                    loop {
                        self.block(&branch.then, loops);
                        match branch.otherwise.as_deref() {
                            None => break,
                            Some(Else::Block(body)) => {
                                self.block(body, loops);
                                break;
                            }
                            Some(Else::If { branch: next, .. }) => branch = next,
                        }
                    }
                }
                StatementKind::Foreach { var, body, .. } => {
                    self.assigned(pos, var);
                    self.block(body, loops + 1);
                }
                StatementKind::Target { body, .. } => self.block(body, loops + 1),
                StatementKind::Unsupported { construct, body } => {
                    self.report(pos, format!("`{construct}` is not supported by Holt"));
                    self.block(body, loops);
                }
                StatementKind::Break | StatementKind::Continue if loops == 0 => {
                    let word = if matches!(statement.kind, StatementKind::Break) {
                        "break"
                    } else {
                        "continue"
                    };
                    self.report(pos, format!("`{word}` outside a foreach loop"));
                }
                StatementKind::Try { body, catch } => {
                    self.block(body, loops);
                    self.block(catch, loops);
                }
                StatementKind::Module { params, body, .. } => {
                    for param in params {
                        self.assigned(pos, &param.var);
                    }
                    self.block(body, 0);
                }
                StatementKind::Call { name, .. } => {
                    let bare = match name.rsplit_once("::") {
                        Some((ns, bare))
                            if NAMESPACES.iter().any(|k| k.eq_ignore_ascii_case(ns)) =>
                        {
                            bare
                        }
                        Some(_) => {
                            self.report(pos, format!("unknown module `{name}`"));
                            continue;
                        }
                        None => name.as_str(),
                    };
                    if !self.modules.contains(&bare.to_lowercase()) {
                        self.report(pos, format!("unknown module `{name}`"));
                    }
                }
                StatementKind::Set { target, .. } => self.assigned(pos, target),
                StatementKind::Await(_)
                | StatementKind::Break
                | StatementKind::Continue
                | StatementKind::Return
                | StatementKind::Throw(_)
                | StatementKind::Fail
                | StatementKind::Error
                | StatementKind::Warn
                | StatementKind::ForceWarn
                | StatementKind::ForceNormal => {}
            }
        }
    }
}
