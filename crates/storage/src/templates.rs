//! Reading job templates from a directory of TOML files, one per template, file stem = name.

use std::fmt;
use std::path::{Path, PathBuf};

use holt_domain::{Template, TemplateCatalog, TemplateDiagnostic, TemplateName};

/// Why a templates directory could not be loaded: every problem in every file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// One line per problem: `path:line:column: message`, or `path: message` when the problem is
    /// the file as a whole.
    pub problems: Vec<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for LoadError {}

/// Loads every `*.toml` file in `dir` as a template. `check` adds what only a caller knows
/// (such as which operations exist); its diagnostics are reported like the file's own. Any
/// problem in any file fails the whole load, and all problems are reported together.
pub fn load_dir(
    dir: &Path,
    check: impl Fn(&Template) -> Vec<TemplateDiagnostic>,
) -> Result<TemplateCatalog, LoadError> {
    let paths = template_paths(dir)?;
    let mut problems = Vec::new();
    let mut templates = Vec::new();
    for path in paths {
        match load_file(&path, &check) {
            Ok(template) => templates.push(template),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() {
        Ok(TemplateCatalog::new(templates))
    } else {
        Err(LoadError { problems })
    }
}

/// Loads the templates directory again for a running server: each file that loads replaces its
/// template, a file that fails keeps the template `current` has of that name (if any), and a
/// template whose file is gone is dropped. Returns the new catalog and every problem found, so
/// one broken edit never takes a working template away.
pub fn reload_dir(
    dir: &Path,
    check: impl Fn(&Template) -> Vec<TemplateDiagnostic>,
    current: &TemplateCatalog,
) -> (TemplateCatalog, Vec<String>) {
    let paths = match template_paths(dir) {
        Ok(paths) => paths,
        Err(e) => {
            let kept = TemplateCatalog::from_shared(current.iter().cloned());
            return (kept, e.problems);
        }
    };
    let mut problems = Vec::new();
    let mut templates = Vec::new();
    for path in paths {
        match load_file(&path, &check) {
            Ok(template) => templates.push(std::sync::Arc::new(template)),
            Err(mut found) => {
                let kept = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|stem| stem.parse::<TemplateName>().ok())
                    .and_then(|name| current.get(&name).cloned());
                if let Some(old) = kept {
                    found.push(format!(
                        "{}: the template loaded before stays in use",
                        path.display()
                    ));
                    templates.push(old);
                }
                problems.append(&mut found);
            }
        }
    }
    (TemplateCatalog::from_shared(templates), problems)
}

/// The `*.toml` files of a templates directory, sorted.
fn template_paths(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let whole = |path: &Path, message: String| LoadError {
        problems: vec![format!("{}: {message}", path.display())],
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| whole(dir, format!("cannot read the templates directory: {e}")))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| whole(dir, format!("cannot read the templates directory: {e}")))?
            .path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn load_file(
    path: &Path,
    check: &impl Fn(&Template) -> Vec<TemplateDiagnostic>,
) -> Result<Template, Vec<String>> {
    let shown = path.display();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let name: TemplateName = stem.parse().map_err(|e| {
        vec![format!(
            "{shown}: the file name is not a template name: {e}"
        )]
    })?;
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    let at = |d: &TemplateDiagnostic| format!("{shown}:{}:{}: {}", d.line, d.column, d.message);
    let template = Template::from_toml(name, &text)
        .map_err(|e| e.diagnostics.iter().map(at).collect::<Vec<_>>())?;
    let extra = check(&template);
    if extra.is_empty() {
        Ok(template)
    } else {
        Err(extra.iter().map(at).collect())
    }
}
