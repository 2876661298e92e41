//! What nodes say to each other: gossip announcements and the fetch
//! protocol, with the size of every message bounded before it is read.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};

use crate::proto::{BlobHash, PublicKey, limits};

/// Protocol name of blob fetching.
pub const FETCH_PROTOCOL: &str = "/kolokol/fetch/1";
/// Bytes of a blob sent in one fetch response.
pub const CHUNK: u64 = 256 * 1024;
/// Largest fetch request read.
pub const MAX_REQUEST: usize = 1024;
/// Largest fetch response read: one chunk and its framing.
pub const MAX_RESPONSE: usize = CHUNK as usize + 1024;
/// Largest gossip message: a manifest and its certificate, with framing.
pub const MAX_GOSSIP: usize = limits::MAX_MANIFEST_BYTES + limits::MAX_CERTIFICATE_BYTES + 64;

/// The gossip topic of a publisher.
pub fn topic_name(publisher: &PublicKey) -> String {
    format!("kolokol/v1/publisher/{}", hex::encode(publisher.as_bytes()))
}

/// A gossip message. Each carries the certificate its signature needs, so
/// a node that has not seen the certificate yet can still verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Announcement {
    /// A new bundle: its signing key's certificate and its manifest. The
    /// blobs are fetched separately.
    Bundle {
        /// Signed key certificate.
        certificate: Vec<u8>,
        /// Signed manifest.
        manifest: Vec<u8>,
    },
    /// The publisher's heartbeat.
    Head {
        /// Signed key certificate.
        certificate: Vec<u8>,
        /// Signed head.
        head: Vec<u8>,
    },
    /// A new signing key.
    Certificate(Vec<u8>),
    /// A revoked signing key.
    Revocation(Vec<u8>),
}

impl Announcement {
    /// The encoded message.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a message already bounded by gossipsub's transmit limit.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_GOSSIP {
            return None;
        }
        match postcard::take_from_bytes::<Self>(bytes) {
            Ok((a, [])) => Some(a),
            _ => None,
        }
    }
}

/// A fetch request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchRequest {
    /// Up to [`CHUNK`] bytes of a blob from `offset`.
    Blob {
        /// The blob.
        hash: BlobHash,
        /// Where to start.
        offset: u64,
    },
}

/// A fetch response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchResponse {
    /// A piece of the blob.
    Chunk {
        /// The blob's whole size.
        total: u64,
        /// Where this piece starts.
        offset: u64,
        /// The piece, at most [`CHUNK`] bytes.
        data: Vec<u8>,
    },
    /// The peer does not hold the blob.
    NotFound,
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
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the limit of {max}"),
        ));
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

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::io::Result<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "malformed fetch message",
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
        decode(&read_frame(io, MAX_REQUEST).await?)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
    ) -> std::io::Result<FetchResponse> {
        decode(&read_frame(io, MAX_RESPONSE).await?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_refuse_trailing_bytes() {
        let a = Announcement::Bundle {
            certificate: vec![1, 2],
            manifest: vec![3; 10],
        };
        let bytes = a.encode();
        assert_eq!(Announcement::decode(&bytes), Some(a));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Announcement::decode(&longer), None);
        assert_eq!(Announcement::decode(&vec![0; MAX_GOSSIP + 1]), None);
    }

    #[test]
    fn oversized_frames_are_refused_before_reading() {
        let mut bytes = (MAX_REQUEST as u32 + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let mut io = futures::io::Cursor::new(bytes);
        let err = futures::executor::block_on(read_frame(&mut io, MAX_REQUEST)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
