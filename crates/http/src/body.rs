//! The response body: a whole text, or chunks streamed from a task as they are read.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// Why a streamed body ended early; the connection is closed rather than a short body passing
/// for a whole one.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// A body known in full.
    Full(Option<Bytes>),
    /// A body sent in chunks as a producer task makes them.
    Channel(mpsc::Receiver<Result<Bytes, BodyError>>),
}

impl Body {
    /// A body of this text.
    pub fn text(text: impl Into<Bytes>) -> Self {
        Body::Full(Some(text.into()))
    }

    /// A streamed body and the sender its producer writes chunks to. The channel holds a few
    /// chunks, so a slow client slows the producer instead of growing a buffer.
    pub fn channel() -> (mpsc::Sender<Result<Bytes, BodyError>>, Self) {
        let (tx, rx) = mpsc::channel(2);
        (tx, Body::Channel(rx))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Body::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Body::Channel(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Channel(_) => SizeHint::default(),
        }
    }
}
