//! Transfer-Files between two servers: the files travel as one `tar` stream from a script on the
//! source to a script on the target, through a pipe between their two clients on holtd's host,
//! so that no file passes through holtd's memory and no size bounds a transfer.
//!
//! The names to send are handed to the source's `tar` on its standard input, NUL-separated and
//! each starting with `./` (never read as an option, never a path outside the directory). The
//! target's `tar` extracts into the target directory and skips any member that would land
//! outside it.

use super::*;
use crate::interp::host::unmark;
use crate::process;

/// Reads the named files (relative to `$HOLT_DIR`) and writes them as a tar stream.
const SEND: &str = r#"cd -- "$HOLT_DIR" || exit 1
exec tar -cf - --null -T -
"#;

/// Writes a tar stream's files into `$HOLT_DIR`, made if needed.
const RECEIVE: &str = r#"mkdir -p -- "$HOLT_DIR" && cd -- "$HOLT_DIR" || exit 1
exec tar -xf - --no-same-owner
"#;

/// The name of a server in context, `localhost` when there is none.
pub(super) fn server_name(server: &Option<Arc<Server>>) -> &str {
    server.as_ref().map_or("localhost", |s| s.name.as_str())
}

impl Ctx {
    /// Sends `files` (relative to `from` on `source`) to `to` on the server in context.
    pub(super) async fn stream_files(
        &mut self,
        source: Option<Arc<Server>>,
        from: &str,
        to: &str,
        files: &[&String],
    ) -> Done {
        let local = || Arc::new(Server::localhost());
        let source = source.unwrap_or_else(local);
        let target = self.place.server.clone().unwrap_or_else(local);
        let (send, _) = self
            .script_on(&source, SEND, vec![env("HOLT_DIR", from)])
            .await?;
        let (receive, _) = self
            .script_on(&target, RECEIVE, vec![env("HOLT_DIR", to)])
            .await?;
        let mut names = Vec::new();
        for file in files {
            names.extend_from_slice(b"./");
            names.extend_from_slice(file.as_bytes());
            names.push(0);
        }
        let (mut sent, mut received) = process::pipe(
            &send,
            names,
            &receive,
            super::super::host::MAX_CAPTURE_BYTES,
            &self.cancel,
            self.shared.kill_grace,
        )
        .await
        .map_err(|e| format!("cannot start the transfer: {e}"))?;
        if self.cancel.is_cancelled() {
            return Err(Signal::Stopped.into());
        }
        let (from_name, to_name) = (source.name.as_str(), target.name.as_str());
        unmark(from_name, &mut sent)?;
        unmark(to_name, &mut received)?;
        for (captured, side, name) in [
            (&sent, "reading on", from_name),
            (&received, "writing on", to_name),
        ] {
            let code = match captured.ended {
                process::Ended::Exited(status) => status.code(),
                process::Ended::Stopped => return Err(Signal::Stopped.into()),
            };
            if code != Some(0) {
                let said = String::from_utf8_lossy(&captured.stderr);
                let reason = said
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map_or_else(|| format!("tar exited with {code:?}"), ToOwned::to_owned);
                return Err(format!("transfer failed {side} server {name}: {reason}").into());
            }
        }
        Ok(())
    }
}
