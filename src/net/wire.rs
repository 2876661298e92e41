//! The network's codecs: the fetch and catch-up messages of
//! [`crate::sync::messages`] as length-prefixed postcard on a stream, with
//! the size of every message bounded before it is read, and what a
//! message holds once decoded bounded while it decodes
//! ([`crate::proto::bounded`]).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::Serialize;

use crate::proto::bounded::{self, BoundedError};
pub use crate::sync::messages::*;

/// The error inside the `std::io::Error` of a message that broke the
/// protocol's limits (its frame's length, its memory budget, a field's
/// count or size): no honest peer sends one, so the driver treats its
/// sender as misbehaving. Find it with [`over_limits`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OverLimits(pub BoundedError);

/// Whether `e` is a message over the protocol's limits ([`OverLimits`]).
pub fn over_limits(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverLimits>())
}

fn over_limits_error(e: BoundedError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, OverLimits(e))
}

/// Length-prefixed postcard over a stream, refusing anything larger than
/// its limit before reading it.
#[derive(Debug, Clone, Default)]
pub struct FetchCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(over_limits_error(BoundedError::OverLimits {
            what: "a message's length",
            limit: max,
        }));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
) -> std::io::Result<()> {
    io.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

/// Decodes a whole frame within the memory budget of its length, at most
/// `ceiling`.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], ceiling: usize) -> std::io::Result<T> {
    match bounded::postcard(bytes, ceiling) {
        Ok(v) => Ok(v),
        Err(e) if e.is_over_limits() => Err(over_limits_error(e)),
        Err(e) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("malformed message: {e}"),
        )),
    }
}

fn encode<T: Serialize>(v: &T) -> std::io::Result<Vec<u8>> {
    postcard::to_allocvec(v)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

impl libp2p::request_response::Codec for FetchCodec {
    type Protocol = libp2p::StreamProtocol;
    type Request = FetchRequest;
    type Response = FetchResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
    ) -> std::io::Result<FetchRequest> {
        decode(
            &read_frame(io, MAX_REQUEST).await?,
            bounded::ceiling(MAX_REQUEST),
        )
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
    ) -> std::io::Result<FetchResponse> {
        decode(
            &read_frame(io, MAX_RESPONSE).await?,
            bounded::ceiling(MAX_RESPONSE),
        )
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        req: FetchRequest,
    ) -> std::io::Result<()> {
        write_frame(io, &encode(&req)?).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        res: FetchResponse,
    ) -> std::io::Result<()> {
        write_frame(io, &encode(&res)?).await
    }
}

/// Catch-up traffic counted by the codec: messages and bytes each way.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Messages sent (requests and responses).
    pub messages_sent: std::sync::atomic::AtomicU64,
    /// Bytes sent, framing included.
    pub bytes_sent: std::sync::atomic::AtomicU64,
    /// Messages received.
    pub messages_received: std::sync::atomic::AtomicU64,
    /// Bytes received, framing included.
    pub bytes_received: std::sync::atomic::AtomicU64,
}

impl SyncCounters {
    fn sent(&self, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.messages_sent.fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes as u64 + 4, Relaxed);
    }

    fn received(&self, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.messages_received.fetch_add(1, Relaxed);
        self.bytes_received.fetch_add(bytes as u64 + 4, Relaxed);
    }
}

/// The limits and message types of a counted protocol.
pub trait Protocol: Send + Sync + 'static {
    /// Its requests.
    type Request: Serialize + serde::de::DeserializeOwned + Send + std::fmt::Debug;
    /// Its responses.
    type Response: Serialize + serde::de::DeserializeOwned + Send + std::fmt::Debug;
    /// Largest request read.
    const MAX_REQUEST: usize;
    /// Largest response read (and written).
    const MAX_RESPONSE: usize;
    /// Most bytes a decoded response may hold.
    const RESPONSE_CEILING: usize;
    /// What a response is, for the error of one over its limit.
    const WHAT: &'static str;
}

/// Catch-up's messages and limits.
#[derive(Debug)]
pub struct CatchUp;

impl Protocol for CatchUp {
    type Request = SyncRequest;
    type Response = SyncResponse;
    const MAX_REQUEST: usize = MAX_SYNC_REQUEST;
    const MAX_RESPONSE: usize = MAX_SYNC_RESPONSE;
    const RESPONSE_CEILING: usize = SYNC_DECODE_CEILING;
    const WHAT: &'static str = "catch-up response over its limit";
}

/// The log's messages and limits.
#[derive(Debug)]
pub struct Log;

impl Protocol for Log {
    type Request = LogRequest;
    type Response = LogResponse;
    const MAX_REQUEST: usize = MAX_LOG_REQUEST;
    const MAX_RESPONSE: usize = MAX_LOG_RESPONSE;
    const RESPONSE_CEILING: usize = LOG_DECODE_CEILING;
    const WHAT: &'static str = "log response over its limit";
}

/// Length-prefixed postcard like [`FetchCodec`], with the traffic counted.
#[derive(Debug)]
pub struct Counted<P> {
    /// Shared by every connection's copy of the codec.
    pub counters: std::sync::Arc<SyncCounters>,
    protocol: std::marker::PhantomData<fn() -> P>,
}

impl<P> Default for Counted<P> {
    fn default() -> Self {
        Self {
            counters: Default::default(),
            protocol: std::marker::PhantomData,
        }
    }
}

impl<P> Clone for Counted<P> {
    fn clone(&self) -> Self {
        Self {
            counters: self.counters.clone(),
            protocol: std::marker::PhantomData,
        }
    }
}

/// The catch-up codec.
pub type SyncCodec = Counted<CatchUp>;
/// The log codec.
pub type LogCodec = Counted<Log>;

impl<P: Protocol> libp2p::request_response::Codec for Counted<P> {
    type Protocol = libp2p::StreamProtocol;
    type Request = P::Request;
    type Response = P::Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
    ) -> std::io::Result<P::Request> {
        let frame = read_frame(io, P::MAX_REQUEST).await?;
        self.counters.received(frame.len());
        // The counts of a request are checked while it decodes.
        decode(&frame, bounded::ceiling(P::MAX_REQUEST))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
    ) -> std::io::Result<P::Response> {
        let frame = read_frame(io, P::MAX_RESPONSE).await?;
        self.counters.received(frame.len());
        decode(&frame, P::RESPONSE_CEILING)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        req: P::Request,
    ) -> std::io::Result<()> {
        let bytes = encode(&req)?;
        self.counters.sent(bytes.len());
        write_frame(io, &bytes).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        res: P::Response,
    ) -> std::io::Result<()> {
        let bytes = encode(&res)?;
        if bytes.len() > P::MAX_RESPONSE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                P::WHAT,
            ));
        }
        self.counters.sent(bytes.len());
        write_frame(io, &bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_frames_are_refused_before_reading() {
        let mut bytes = (MAX_REQUEST as u32 + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let mut io = futures::io::Cursor::new(bytes);
        let err = futures::executor::block_on(read_frame(&mut io, MAX_REQUEST)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
