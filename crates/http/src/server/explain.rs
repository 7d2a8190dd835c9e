//! Gives hyper's own refusals a body. hyper answers a request it cannot parse (a malformed
//! request line or header, a URI or head over its limits) by itself, with 400, 414 or 431 and
//! an empty body, and offers no hook to change that answer.
//!
//! The connection's IO is wrapped, and the wrapper replaces that answer as it is written. This
//! is sound on keep-alive connections because hyper writes such an answer only when no response
//! is being written and closes the connection right after it, so it is always the last bytes of
//! the connection; and it can be told apart from any response of the router, because every
//! response the router makes carries a `Content-Type` and hyper's own never does. Validating
//! request heads before hyper instead would mean following the framing of every request on a
//! keep-alive connection (bodies, chunked encoding) a second time, outside hyper.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest answer hyper makes by itself; a longer write does not end with one.
const MAX_HYPER_ANSWER: usize = 512;

/// An IO whose writes of hyper's empty refusals are replaced by the same status with a
/// one-line plain-text body.
#[derive(Debug)]
pub(crate) struct Explained<T> {
    inner: T,
    max_head_bytes: usize,
    /// A replacement being written: its bytes, how many are written, and how many bytes of
    /// hyper's answer it stands for (reported written once it is all written).
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> Explained<T> {
    pub(crate) fn new(inner: T, max_head_bytes: usize) -> Self {
        Explained {
            inner,
            max_head_bytes,
            replacing: None,
        }
    }
}

/// Where, in `buf`, an answer of hyper's own begins that runs to the end of `buf`, and its
/// status code.
fn hyper_answer(buf: &[u8]) -> Option<(usize, u16)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let window = buf.len().saturating_sub(MAX_HYPER_ANSWER);
    let start = window + buf[window..].windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    if start > 0 && buf[start - 1] != b'\n' {
        return None;
    }
    let head = &buf[start..];
    // One head and nothing else: no blank line before its end.
    if head[..head.len() - 2].windows(4).any(|w| w == b"\r\n\r\n") {
        return None;
    }
    let status: u16 = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
    if !matches!(status, 400 | 414 | 431) {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    let has = |name: &[u8]| lower.windows(name.len()).any(|w| w == name);
    if has(b"\r\ncontent-type:") || !has(b"\r\ncontent-length: 0\r\n") {
        return None;
    }
    Some((start, status))
}

impl<T> Explained<T> {
    /// The answer that replaces hyper's: the same status, a body saying why, and the end of
    /// the connection.
    fn replacement(&self, status: u16) -> Vec<u8> {
        let (phrase, reason) = match status {
            414 => (
                "URI Too Long",
                "request URI is longer than the server accepts".to_owned(),
            ),
            431 => (
                "Request Header Fields Too Large",
                format!("request head is larger than {} bytes", self.max_head_bytes),
            ),
            _ => (
                "Bad Request",
                "malformed request: its request line or headers could not be parsed".to_owned(),
            ),
        };
        format!(
            "HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{reason}",
            reason.len()
        )
        .into_bytes()
    }
}

impl<T: AsyncWrite + Unpin> Explained<T> {
    /// Writes the replacement in progress; ready with the length of hyper's answer when done.
    fn poll_replacing(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        while let Some((bytes, written, stands_for)) = &mut self.replacing {
            if *written == bytes.len() {
                let done = *stands_for;
                self.replacing = None;
                return Poll::Ready(Ok(done));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(0))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Explained<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Explained<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_some() {
            return this.poll_replacing(cx);
        }
        match hyper_answer(buf) {
            // What comes before hyper's answer (the end of an earlier response) is written as
            // it is; the answer arrives again in a later write, at its start.
            Some((start, _)) if start > 0 => {
                Pin::new(&mut this.inner).poll_write(cx, &buf[..start])
            }
            Some((_, status)) => {
                this.replacing = Some((this.replacement(status), 0, buf.len()));
                this.poll_replacing(cx)
            }
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        // hyper queues its answer as a buffer of its own, so only the last one can hold it.
        let last = bufs.iter().rposition(|b| !b.is_empty());
        match last {
            Some(i) if this.replacing.is_none() && hyper_answer(&bufs[i]).is_some() => {
                if bufs[..i].iter().any(|b| !b.is_empty()) {
                    Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..i])
                } else {
                    Pin::new(this).poll_write(cx, &bufs[i])
                }
            }
            _ if this.replacing.is_some() => this.poll_replacing(cx),
            _ => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_hyper_answers() {
        let answer = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_answer(answer), Some((0, 400)));
        let mut after = b"0\r\n\r\n".to_vec();
        after.extend_from_slice(answer);
        assert_eq!(hyper_answer(&after), Some((5, 400)));
        let ours =
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_answer(ours), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_answer(ok), None);
        assert_eq!(hyper_answer(b"x\r\n0\r\n\r\n"), None);
        let inside = b"xHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_answer(inside), None);
    }
}
