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

/// The saved book `saved` without the addresses `listed` (multiaddrs
/// ending in `/p2p/ID`, as a mirror list gives them) where it has them
/// from a mirror list: what forgetting a publisher takes from the book. A
/// peer left with no address goes. `None` when nothing changed.
pub fn forget_listed(saved: &[u8], listed: &[String]) -> Result<Option<Vec<u8>>, BookError> {
    if saved.len() > MAX_SAVED_BYTES {
        return Err(BookError::Damaged(format!(
            "{} bytes, over the bound of {MAX_SAVED_BYTES}",
            saved.len()
        )));
    }
    let gone: Vec<(Vec<u8>, Vec<u8>)> = listed
        .iter()
        .filter_map(|text| text.parse::<Multiaddr>().ok())
        .filter_map(|addr| match super::split(&addr) {
            (bare, Some(peer)) => Some((peer.to_bytes(), bare.to_vec())),
            (_, None) => None,
        })
        .collect();
    // Bounded above, as in `load`.
    let mut book: SavedBook =
        postcard::from_bytes(saved).map_err(|e| BookError::Damaged(e.to_string()))?;
    let mut changed = false;
    for p in &mut book.peers {
        let before = p.addrs.len();
        p.addrs.retain(|a| {
            a.source != Source::MirrorList
                || !gone
                    .iter()
                    .any(|(peer, addr)| *peer == p.peer && *addr == a.addr)
        });
        changed |= p.addrs.len() != before;
    }
    book.peers.retain(|p| !p.addrs.is_empty());
    if !changed {
        return Ok(None);
    }
    postcard::to_stdvec(&book)
        .map(Some)
        .map_err(|e| BookError::Damaged(e.to_string()))
}

/// The peer id, as bytes, that a mirror list's address names (its
/// `/p2p/ID`), if it names one.
pub fn listed_peer(addr: &str) -> Option<Vec<u8>> {
    let addr = addr.parse::<Multiaddr>().ok()?;
    super::split(&addr).1.map(|p| p.to_bytes())
}
