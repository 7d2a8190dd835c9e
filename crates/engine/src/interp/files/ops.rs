//! The file operations: each one fixed `sh` scripts through the host primitive.

use super::*;

impl Ctx {
    /// `Create-File Name: path, Text: text, Overwrite: bool, FileMode: octal`.
    pub(super) async fn create_file(&mut self, op: &Operation) -> Done {
        let name = self.required(op, "Name", true)?;
        let path = resolve(&name)?;
        let text = self.text_arg(op, "Text", false)?.unwrap_or_default();
        let overwrite = self.flag(op, "Overwrite", false)?;
        let mode = match self.text_arg(op, "FileMode", false)? {
            None => String::new(),
            Some(mode) => {
                let mode = mode.trim().to_owned();
                if !(3..=4).contains(&mode.len()) || !mode.chars().all(|c| ('0'..='7').contains(&c))
                {
                    return Err(format!(
                        "FileMode must be an octal mode like 644, found \"{mode}\""
                    )
                    .into());
                }
                mode
            }
        };
        const SCRIPT: &str = r#"if [ -e "$HOLT_PATH" ] || [ -L "$HOLT_PATH" ]; then
  if [ "$HOLT_OVERWRITE" != true ]; then echo "the file already exists and Overwrite is false" >&2; exit 1; fi
  if [ -d "$HOLT_PATH" ]; then echo "a directory is in the way" >&2; exit 1; fi
fi
mkdir -p -- "$HOLT_PARENT" || exit 1
cat > "$HOLT_PATH" || exit 1
if [ -n "$HOLT_MODE" ]; then chmod "$HOLT_MODE" "$HOLT_PATH" || exit 1; fi
"#;
        self.run_ok(
            SCRIPT,
            vec![
                env("HOLT_PATH", &path),
                env("HOLT_PARENT", &parent(&path)),
                env("HOLT_OVERWRITE", if overwrite { "true" } else { "false" }),
                env("HOLT_MODE", &mode),
            ],
            Some(text.into_bytes()),
        )
        .await?;
        self.log(LogLevel::Info, &format!("Created {name}")).await?;
        Ok(())
    }

    /// `Ensure-File Name: path, Text: text, Exists: bool, ReadOnly: bool`: brings the file to
    /// the state asked for, logging whether it was already so.
    pub(super) async fn ensure_file(&mut self, op: &Operation) -> Done {
        let name = self.required(op, "Name", true)?;
        let path = resolve(&name)?;
        let text = self.text_arg(op, "Text", false)?;
        let exists = self.flag(op, "Exists", true)?;
        let read_only = match self.text_arg(op, "ReadOnly", false)? {
            None => None,
            Some(t) => Some(truthy(&t).map_err(|e| Fail::Message(format!("ReadOnly: {e}")))?),
        };
        // The state: `n` (nothing there), `d` (something that is not a file), or `f` then `w`
        // or `r` (whether the owner may write) then, when the text is to be compared, the
        // contents.
        const STATE: &str = r#"if [ -f "$HOLT_PATH" ]; then
  printf f
  if [ -n "$(find "$HOLT_PATH" -prune -perm -0200)" ]; then printf w; else printf r; fi
  if [ "$HOLT_READ" = true ]; then cat "$HOLT_PATH" || exit 1; fi
elif [ -e "$HOLT_PATH" ] || [ -L "$HOLT_PATH" ]; then printf d
else printf n
fi
"#;
        let state = self
            .run_ok(
                STATE,
                vec![
                    env("HOLT_PATH", &path),
                    env("HOLT_READ", if text.is_some() { "true" } else { "false" }),
                ],
                None,
            )
            .await?
            .stdout;
        let kind = state.first().copied().unwrap_or(b'n');
        if kind == b'd' {
            return Err(format!("{name} exists and is not a file").into());
        }
        if !exists {
            if kind == b'n' {
                self.log(LogLevel::Info, &format!("{name} is already absent"))
                    .await?;
                return Ok(());
            }
            self.run_ok(r#"rm -f "$HOLT_PATH""#, vec![env("HOLT_PATH", &path)], None)
                .await?;
            self.log(LogLevel::Info, &format!("Deleted {name}")).await?;
            return Ok(());
        }
        let mut changes = Vec::new();
        let writable = state.get(1) == Some(&b'w');
        let current = state.get(2..).unwrap_or_default();
        let write = match (&text, kind) {
            (_, b'n') => {
                changes.push("created it");
                true
            }
            (Some(text), _) if text.as_bytes() != current => {
                changes.push("wrote its text");
                true
            }
            _ => false,
        };
        let want_read_only = read_only.unwrap_or(kind == b'f' && !writable);
        let chmod = if kind == b'n' {
            want_read_only
        } else {
            want_read_only == writable
        };
        if chmod {
            changes.push(if want_read_only {
                "made it read-only"
            } else {
                "made it writable"
            });
        }
        if changes.is_empty() {
            self.log(
                LogLevel::Info,
                &format!("{name} is already in the desired state"),
            )
            .await?;
            return Ok(());
        }
        const WRITE: &str = r#"if [ "$HOLT_WRITE" = true ]; then
  mkdir -p -- "$HOLT_PARENT" || exit 1
  if [ -f "$HOLT_PATH" ]; then chmod u+w "$HOLT_PATH" || exit 1; fi
  cat > "$HOLT_PATH" || exit 1
fi
if [ "$HOLT_READ_ONLY" = true ]; then chmod a-w "$HOLT_PATH" || exit 1
else chmod u+w "$HOLT_PATH" || exit 1
fi
"#;
        self.run_ok(
            WRITE,
            vec![
                env("HOLT_PATH", &path),
                env("HOLT_PARENT", &parent(&path)),
                env("HOLT_WRITE", if write { "true" } else { "false" }),
                env(
                    "HOLT_READ_ONLY",
                    if want_read_only { "true" } else { "false" },
                ),
            ],
            Some(text.unwrap_or_default().into_bytes()),
        )
        .await?;
        self.log(
            LogLevel::Info,
            &format!("{name} was changed: {}", changes.join(", ")),
        )
        .await?;
        Ok(())
    }

    /// `Ensure-Directory Name: path, Exists: bool`.
    pub(super) async fn ensure_directory(&mut self, op: &Operation) -> Done {
        let name = self.required(op, "Name", true)?;
        let path = resolve(&name)?;
        let exists = self.flag(op, "Exists", true)?;
        const SCRIPT: &str = r#"if [ -d "$HOLT_PATH" ] && [ ! -L "$HOLT_PATH" ]; then
  if [ "$HOLT_EXISTS" = true ]; then printf same; exit 0; fi
  rm -rf -- "$HOLT_PATH" || exit 1
  printf deleted
elif [ -e "$HOLT_PATH" ] || [ -L "$HOLT_PATH" ]; then
  echo "it exists and is not a directory" >&2; exit 1
else
  if [ "$HOLT_EXISTS" != true ]; then printf same; exit 0; fi
  mkdir -p -- "$HOLT_PATH" || exit 1
  printf created
fi
"#;
        let out = self
            .run_ok(
                SCRIPT,
                vec![
                    env("HOLT_PATH", &path),
                    env("HOLT_EXISTS", if exists { "true" } else { "false" }),
                ],
                None,
            )
            .await?
            .stdout;
        let line = match out.as_slice() {
            b"created" => format!("Created the directory {name}"),
            b"deleted" => format!("Deleted the directory {name}"),
            _ if exists => format!("The directory {name} already exists"),
            _ => format!("The directory {name} is already absent"),
        };
        self.log(LogLevel::Info, &line).await?;
        Ok(())
    }

    /// The directory an operation works in: its argument resolved, or the job's working
    /// directory.
    pub(super) fn directory(&self, op: &Operation, name: &str) -> Result<String, Fail> {
        match self.text_arg(op, name, false)? {
            None => Ok(".".to_owned()),
            Some(dir) if dir.is_empty() => Ok(".".to_owned()),
            Some(dir) => Ok(resolve(&dir)?),
        }
    }

    /// `Delete-Files Include: masks, Exclude: masks, Directory: path, Verbose: bool`: deletes
    /// the selected files, then the selected directories left empty by it, deepest first.
    pub(super) async fn delete_files(&mut self, op: &Operation) -> Done {
        let include = self.masks(op, "Include", true)?;
        if include.is_empty() {
            return Err("Include is required".into());
        }
        let selection = Selection::new(&include, &self.masks(op, "Exclude", false)?)?;
        let dir = self.directory(op, "Directory")?;
        let verbose = self.flag(op, "Verbose", false)?;
        let listing = self.list(&dir).await?;
        let (gone, kept): (Vec<_>, Vec<_>) =
            listing.files.iter().partition(|f| selection.selects(f));
        let mut dirs: Vec<&String> = listing
            .dirs
            .iter()
            .filter(|d| selection.selects(d))
            .filter(|d| {
                let inside = format!("{d}/");
                !kept.iter().any(|f| f.starts_with(&inside))
                    && !listing
                        .dirs
                        .iter()
                        .any(|other| other.starts_with(&inside) && !selection.selects(other))
            })
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        let in_dir = |rel: &str| format!("{}/{rel}", dir.trim_end_matches('/'));
        let files: Vec<(String, String)> = gone.iter().map(|f| (in_dir(f), in_dir(f))).collect();
        self.each(
            r#"rm -f "$src" || exit 1
"#,
            &[],
            &files,
        )
        .await?;
        let dir_items: Vec<(String, String)> =
            dirs.iter().map(|d| (in_dir(d), in_dir(d))).collect();
        self.each(
            r#"rmdir "$src" || exit 1
"#,
            &[],
            &dir_items,
        )
        .await?;
        if verbose {
            for f in &gone {
                self.log(LogLevel::Debug, &format!("Deleted {f}")).await?;
            }
            for d in &dirs {
                self.log(LogLevel::Debug, &format!("Deleted the directory {d}"))
                    .await?;
            }
        }
        self.log(
            LogLevel::Info,
            &format!(
                "Deleted {} file{} and {} director{}",
                gone.len(),
                if gone.len() == 1 { "" } else { "s" },
                dirs.len(),
                if dirs.len() == 1 { "y" } else { "ies" }
            ),
        )
        .await?;
        Ok(())
    }

    /// `Copy-Files Include, Exclude, From, To, Overwrite, Verbose`, and, with `transfer`,
    /// `Transfer-Files Include, Exclude, FromDirectory, ToDirectory, DeleteTarget` (which
    /// overwrites, and can delete what the target holds beyond the source's selection).
    pub(super) async fn copy_files(&mut self, op: &Operation, transfer: bool) -> Done {
        // Transfer-Files reads on `FromServer` and writes on `ToServer`, each the server in
        // context when not named; Copy-Files works on the server in context alone.
        let here = self.place.server.clone();
        let (source, target) = if transfer {
            (
                self.server_arg(op, "FromServer")?,
                self.server_arg(op, "ToServer")?,
            )
        } else {
            (None, None)
        };
        let source = source.or_else(|| here.clone());
        let target = target.or_else(|| here.clone());
        let same = server_name(&source).eq_ignore_ascii_case(server_name(&target));
        let (from_arg, to_arg) = if transfer {
            ("FromDirectory", "ToDirectory")
        } else {
            ("From", "To")
        };
        let mut include = self.masks(op, "Include", false)?;
        if include.is_empty() {
            include.push("**".to_owned());
        }
        let selection = Selection::new(&include, &self.masks(op, "Exclude", false)?)?;
        let from = self.directory(op, from_arg)?;
        let to = match self.text_arg(op, to_arg, false)? {
            Some(to) => resolve(&to)?,
            None => return Err(format!("{to_arg} is required").into()),
        };
        let overwrite = transfer || self.flag(op, "Overwrite", false)?;
        let delete_target = transfer && self.flag(op, "DeleteTarget", false)?;
        let verbose = self.flag(op, "Verbose", false)?;
        self.place.server = source.clone();
        let listing = self.list(&from).await;
        self.place.server = here.clone();
        let listing = listing?;
        let chosen: Vec<&String> = listing
            .files
            .iter()
            .filter(|f| selection.selects(f))
            .collect();
        let src_root = from.trim_end_matches('/').to_owned();
        let dst_root = to.trim_end_matches('/').to_owned();
        let items: Vec<(String, String)> = chosen
            .iter()
            .map(|f| (format!("{src_root}/{f}"), format!("{dst_root}/{f}")))
            .collect();
        let dirs: Vec<(String, String)> = listing
            .dirs
            .iter()
            .filter(|d| selection.selects(d))
            .map(|d| (format!("{dst_root}/{d}"), format!("{dst_root}/{d}/.")))
            .collect();
        // Everything from here on is done on the target server.
        self.place.server = target.clone();
        let done = self
            .copy_to_target(
                &items,
                &dirs,
                &chosen,
                &from,
                &to,
                source,
                same,
                overwrite,
                verbose,
                delete_target,
            )
            .await;
        self.place.server = here;
        done
    }

    /// The server named by a `FromServer` or `ToServer` argument, if one is named.
    fn server_arg(&self, op: &Operation, name: &str) -> Result<Option<Arc<Server>>, Fail> {
        match self.text_arg(op, name, false)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => match self.shared.inventory.server(s.trim()) {
                Some(server) => Ok(Some(Arc::new(server.clone()))),
                None => Err(format!("{name}: there is no server named \"{s}\"").into()),
            },
        }
    }

    /// The second half of Copy-Files and Transfer-Files, on the target server (in context).
    #[allow(clippy::too_many_arguments)]
    async fn copy_to_target(
        &mut self,
        items: &[(String, String)],
        dirs: &[(String, String)],
        chosen: &[&String],
        from: &str,
        to: &str,
        source: Option<Arc<Server>>,
        same: bool,
        overwrite: bool,
        verbose: bool,
        delete_target: bool,
    ) -> Done {
        let dst_root = to.trim_end_matches('/').to_owned();
        self.each(
            r#"mkdir -p -- "$src" || exit 1
"#,
            &[],
            dirs,
        )
        .await?;
        const COPY: &str = r#"if [ -e "$dst" ] || [ -L "$dst" ]; then
  if [ "$HOLT_OVERWRITE" != true ]; then
    echo "the target file exists and Overwrite is false: ${dst#./}" >&2; exit 1
  fi
  rm -f "$dst" || exit 1
fi
mkdir -p -- "$dir" || exit 1
cp "$src" "$dst" || exit 1
"#;
        if same {
            self.each(
                COPY,
                &[env(
                    "HOLT_OVERWRITE",
                    if overwrite { "true" } else { "false" },
                )],
                items,
            )
            .await?;
        } else if !chosen.is_empty() {
            self.stream_files(source, from, to, chosen).await?;
        }
        if verbose {
            for f in chosen {
                self.log(LogLevel::Debug, &format!("Copied {f}")).await?;
            }
        }
        let mut deleted = 0;
        if delete_target {
            let target = self.list(to).await?;
            let copied: std::collections::HashSet<&str> =
                chosen.iter().map(|f| f.as_str()).collect();
            let stale: Vec<(String, String)> = target
                .files
                .iter()
                .filter(|f| !copied.contains(f.as_str()))
                .map(|f| (format!("{dst_root}/{f}"), format!("{dst_root}/{f}")))
                .collect();
            deleted = stale.len();
            self.each(
                r#"rm -f "$src" || exit 1
"#,
                &[],
                &stale,
            )
            .await?;
        }
        let mut line = format!(
            "Copied {} file{} to {}",
            chosen.len(),
            if chosen.len() == 1 { "" } else { "s" },
            to.strip_prefix("./").unwrap_or(to)
        );
        if delete_target {
            line.push_str(&format!(" and deleted {deleted} from it"));
        }
        self.log(LogLevel::Info, &line).await?;
        Ok(())
    }

    /// `Rename-File From: path, To: path, Overwrite: bool`.
    pub(super) async fn rename_file(&mut self, op: &Operation) -> Done {
        let from_name = self.required(op, "From", false)?;
        let to_name = self.required(op, "To", false)?;
        let (from, to) = (resolve(&from_name)?, resolve(&to_name)?);
        let overwrite = self.flag(op, "Overwrite", false)?;
        const SCRIPT: &str = r#"if [ ! -e "$HOLT_FROM" ] && [ ! -L "$HOLT_FROM" ]; then echo "the file to rename does not exist" >&2; exit 1; fi
if [ -e "$HOLT_TO" ] || [ -L "$HOLT_TO" ]; then
  if [ "$HOLT_OVERWRITE" != true ]; then echo "the target exists and Overwrite is false" >&2; exit 1; fi
  if [ -d "$HOLT_TO" ]; then echo "a directory is in the way" >&2; exit 1; fi
fi
mkdir -p -- "$HOLT_PARENT" || exit 1
mv -f "$HOLT_FROM" "$HOLT_TO" || exit 1
"#;
        self.run_ok(
            SCRIPT,
            vec![
                env("HOLT_FROM", &from),
                env("HOLT_TO", &to),
                env("HOLT_PARENT", &parent(&to)),
                env("HOLT_OVERWRITE", if overwrite { "true" } else { "false" }),
            ],
            None,
        )
        .await?;
        self.log(LogLevel::Info, &format!("Renamed {from_name} to {to_name}"))
            .await?;
        Ok(())
    }

    /// `Replace-Text Include, Exclude, Directory, SearchText, ReplaceWith, Regex`: each selected
    /// file is read, the text replaced here, and written back when it changed.
    pub(super) async fn replace_text(&mut self, op: &Operation) -> Done {
        let mut include = self.masks(op, "Include", false)?;
        if include.is_empty() {
            include.push("**".to_owned());
        }
        let selection = Selection::new(&include, &self.masks(op, "Exclude", false)?)?;
        let dir = self.directory(op, "Directory")?;
        let search = self.required(op, "SearchText", false)?;
        if search.is_empty() {
            return Err("SearchText must not be empty".into());
        }
        let with = self.text_arg(op, "ReplaceWith", false)?.unwrap_or_default();
        let regex = self.flag(op, "Regex", false)?;
        let pattern = regex::bytes::Regex::new(&if regex {
            search.clone()
        } else {
            regex::escape(&search)
        })
        .map_err(|e| format!("SearchText is not a valid regular expression: {e}"))?;
        let listing = self.list(&dir).await?;
        let root = dir.trim_end_matches('/').to_owned();
        let mut changed = 0;
        for file in listing.files.iter().filter(|f| selection.selects(f)) {
            let path = format!("{root}/{file}");
            let content = self
                .run_ok(r#"cat "$HOLT_PATH""#, vec![env("HOLT_PATH", &path)], None)
                .await?
                .stdout;
            let replaced = if regex {
                pattern.replace_all(&content, with.as_bytes())
            } else {
                pattern.replace_all(&content, regex::bytes::NoExpand(with.as_bytes()))
            };
            if replaced.as_ref() == content.as_slice() {
                continue;
            }
            let replaced = replaced.into_owned();
            self.run_ok(
                r#"cat > "$HOLT_PATH""#,
                vec![env("HOLT_PATH", &path)],
                Some(replaced),
            )
            .await?;
            self.log(LogLevel::Debug, &format!("Replaced text in {file}"))
                .await?;
            changed += 1;
        }
        self.log(
            LogLevel::Info,
            &format!(
                "Replaced text in {changed} file{}",
                if changed == 1 { "" } else { "s" }
            ),
        )
        .await?;
        Ok(())
    }
}
