//! The book as it is kept in the store between runs: one bounded value.
//!
//! Kept: each peer's addresses and their sources, whether each worked,
//! failures in a row and the transport last used. Not kept: times (they
//! mean nothing in another run), back-offs, connection state. A value
//! over [`MAX_SAVED_BYTES`] or that does not decode is refused whole;
//! within one, peers and addresses past the bounds or that do not parse
//! are dropped one by one.

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use super::{
    Addr, Book, BookError, Entry, MAX_ADDR_BYTES, MAX_ADDRS, MAX_PEERS, Source, Transport,
};

/// The largest saved book read or written: every peer with every
/// address at its longest fits, with room for the encoding.
pub const MAX_SAVED_BYTES: usize = MAX_PEERS * (64 + MAX_ADDRS * (MAX_ADDR_BYTES + 8));

// The store keeps a full book.
const _: () = assert!(MAX_SAVED_BYTES <= crate::store::MAX_ADDRESS_BOOK_BYTES);

/// Version of the encoding; another is ignored (the book starts afresh).
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct SavedBook {
    version: u8,
    peers: Vec<SavedPeer>,
}

#[derive(Serialize, Deserialize)]
struct SavedPeer {
    peer: Vec<u8>,
    failures: u32,
    worked: bool,
    transport: Option<Transport>,
    addrs: Vec<SavedAddr>,
}

#[derive(Serialize, Deserialize)]
struct SavedAddr {
    addr: Vec<u8>,
    source: Source,
    worked: bool,
}

impl Book {
    /// The book's encoding for the store, at most [`MAX_SAVED_BYTES`].
    pub fn save(&self) -> Vec<u8> {
        let mut peers: Vec<(&PeerId, &Entry)> = self.peers.iter().collect();
        peers.sort_by_key(|(p, e)| (e.rank(), p.to_bytes()));
        let saved = SavedBook {
            version: VERSION,
            peers: peers
                .into_iter()
                .map(|(p, e)| SavedPeer {
                    peer: p.to_bytes(),
                    failures: e.failures,
                    worked: e.worked,
                    transport: e.transport,
                    addrs: e
                        .addrs
                        .iter()
                        .map(|a| SavedAddr {
                            addr: a.addr.to_vec(),
                            source: a.source,
                            worked: a.worked,
                        })
                        .collect(),
                })
                .collect(),
        };
        // Bounded by construction (peers, addresses and their lengths
        // are), and an encoding into a Vec does not fail.
        postcard::to_stdvec(&saved).unwrap_or_default()
    }

    /// Takes in a saved book: its peers join this one's (those already
    /// here keep what they have). How many peers came in.
    ///
    /// Configured addresses come back as learned: the configuration of
    /// this run names its own, and a peer taken out of it is then no
    /// more than a mirror met before.
    pub fn load(&mut self, bytes: &[u8]) -> Result<usize, BookError> {
        if bytes.len() > MAX_SAVED_BYTES {
            return Err(BookError::Damaged(format!(
                "{} bytes, over the bound of {MAX_SAVED_BYTES}",
                bytes.len()
            )));
        }
        // The length is bounded above, and postcard's vectors take no
        // more room than their bytes in the input: decoding allocates
        // within a small multiple of MAX_SAVED_BYTES.
        let saved: SavedBook =
            postcard::from_bytes(bytes).map_err(|e| BookError::Damaged(e.to_string()))?;
        if saved.version != VERSION {
            return Err(BookError::Damaged(format!(
                "version {} is not {VERSION}",
                saved.version
            )));
        }
        let mut taken = 0;
        for p in saved.peers.into_iter().take(MAX_PEERS) {
            if self.peers.len() >= MAX_PEERS {
                break;
            }
            let Ok(peer) = PeerId::from_bytes(&p.peer) else {
                continue;
            };
            if self.peers.contains_key(&peer) {
                continue;
            }
            let addrs: Vec<Addr> = p
                .addrs
                .into_iter()
                .filter(|a| a.addr.len() <= MAX_ADDR_BYTES)
                .filter_map(|a| {
                    let addr = Multiaddr::try_from(a.addr).ok()?;
                    (!addr.is_empty()).then_some(Addr {
                        addr,
                        source: if a.source == Source::Config {
                            Source::Learned
                        } else {
                            a.source
                        },
                        worked: a.worked,
                    })
                })
                .take(MAX_ADDRS)
                .collect();
            if addrs.is_empty() {
                continue;
            }
            self.peers.insert(
                peer,
                Entry {
                    addrs,
                    failures: p.failures,
                    worked: p.worked,
                    transport: p.transport,
                    ..Entry::default()
                },
            );
            taken += 1;
        }
        Ok(taken)
    }
}
