//! What a template says about a job's end: the variables it hands back as outputs, and the
//! completion webhooks it sends.

use serde::Deserialize;
use toml::Spanned;

use super::{TemplateDiagnostic, VariableDecl, diag};
use crate::outputs::{Notify, Outputs, is_env_name, url_problem};
use crate::{JobStatus, VarName};

/// One `[[notify]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifySpec {
    url: Spanned<String>,
    on: Option<Vec<Spanned<String>>>,
    secret_env: Option<Spanned<String>>,
}

/// Reads `outputs = [...]`: variable names, each once, none built in, none declared secret.
pub(super) fn read_outputs(
    text: &str,
    written: &[Spanned<String>],
    variables: &[VariableDecl],
    errors: &mut Vec<TemplateDiagnostic>,
) -> Vec<VarName> {
    let mut outputs: Vec<VarName> = Vec::new();
    if written.len() > Outputs::MAX_DECLARED {
        errors.push(diag(
            text,
            written[Outputs::MAX_DECLARED].span(),
            format!("at most {} outputs may be declared", Outputs::MAX_DECLARED),
        ));
        return outputs;
    }
    for spanned in written {
        let name = match spanned.get_ref().parse::<VarName>() {
            Ok(name) => name,
            Err(e) => {
                errors.push(diag(text, spanned.span(), format!("outputs: {e}")));
                continue;
            }
        };
        let problem = if name.is_built_in() {
            Some(format!("output {name} is a built-in variable"))
        } else if outputs.contains(&name) {
            Some(format!(
                "output {name} is declared twice (names ignore case)"
            ))
        } else if variables.iter().any(|d| d.name == name && d.secret) {
            Some(format!(
                "output {name} is a secret variable: a secret cannot be an output"
            ))
        } else {
            None
        };
        match problem {
            Some(message) => errors.push(diag(text, spanned.span(), message)),
            None => outputs.push(name),
        }
    }
    outputs
}

/// Reads `[[notify]]` tables: a URL, the terminal statuses that send it (all three when `on`
/// is left out) and the environment variable holding the signing key.
pub(super) fn read_notify(
    text: &str,
    specs: &[Spanned<NotifySpec>],
    errors: &mut Vec<TemplateDiagnostic>,
) -> Vec<Notify> {
    if specs.len() > Notify::MAX_PER_TEMPLATE {
        errors.push(diag(
            text,
            specs[Notify::MAX_PER_TEMPLATE].span(),
            format!(
                "at most {} notify tables are allowed",
                Notify::MAX_PER_TEMPLATE
            ),
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for spec in specs {
        let spec = spec.get_ref();
        let mut ok = true;
        if let Some(problem) = url_problem(spec.url.get_ref()) {
            errors.push(diag(text, spec.url.span(), format!("notify: {problem}")));
            ok = false;
        }
        let on = match &spec.on {
            None => vec![JobStatus::Succeeded, JobStatus::Warning, JobStatus::Error],
            Some(words) => {
                let mut on = Vec::new();
                for word in words {
                    match word.get_ref().parse::<JobStatus>() {
                        Ok(status) if status.is_terminal() => {
                            if !on.contains(&status) {
                                on.push(status);
                            }
                        }
                        _ => {
                            errors.push(diag(
                                text,
                                word.span(),
                                format!(
                                    "notify: on must list Succeeded, Warning or Error, not {:?}",
                                    word.get_ref()
                                ),
                            ));
                            ok = false;
                        }
                    }
                }
                if on.is_empty() && ok {
                    errors.push(diag(
                        text,
                        spec.url.span(),
                        "notify: on must list at least one status".into(),
                    ));
                    ok = false;
                }
                on
            }
        };
        if let Some(name) = &spec.secret_env
            && !is_env_name(name.get_ref())
        {
            errors.push(diag(
                text,
                name.span(),
                "notify: secret_env must name an environment variable (letters, digits, _)".into(),
            ));
            ok = false;
        }
        if ok {
            out.push(Notify {
                url: spec.url.get_ref().clone(),
                on,
                secret_env: spec.secret_env.as_ref().map(|s| s.get_ref().clone()),
            });
        }
    }
    out
}
