//! Each peer's share of serving: a rate (a token bucket of its own, beside
//! the node's upload cap) and a bound on the store reads it may have
//! waiting at once, per peer and in all. A request over either is refused
//! at once (the asker tries another peer or later), so nothing a peer sends
//! queues without bound: about 100 bytes in no longer buys 2 MiB out as
//! often as the peer likes.

use std::collections::HashMap;

use super::bandwidth::Bucket;
use super::{Peer, Time};

/// Store reads for one peer waiting at once (blob pieces, bundles, holds):
/// above what an honest node keeps outstanding (`max_requests_per_peer`,
/// 8 by default, and a catch-up request or two).
pub const MAX_SERVE_JOBS_PER_PEER: usize = 16;
/// Store reads for peers waiting at once, in all: a quarter of the store
/// queue (`JOB_QUEUE` = 1024), so the node's own jobs always find room.
pub const MAX_SERVE_JOBS: usize = 256;

/// Why a request is not served now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// The node's upload cap is spent for now.
    Upload,
    /// This peer's rate is spent for now.
    Rate,
    /// This peer has [`MAX_SERVE_JOBS_PER_PEER`] reads waiting.
    PeerJobs,
    /// [`MAX_SERVE_JOBS`] reads wait in all.
    Jobs,
    /// The node is a quiet reader: it serves no one.
    Quiet,
}

/// What a waiting read is counted as before it ends: a fetch chunk, the
/// usual answer.
const RESERVED_PER_READ: usize = crate::sync::messages::CHUNK as usize;

#[derive(Debug)]
struct Share {
    bucket: Bucket,
    waiting: usize,
    connected: bool,
}

/// Every peer's share. Entries exist for connected peers and for peers
/// gone with reads still waiting: bounded by the connection caps and
/// [`MAX_SERVE_JOBS`].
#[derive(Debug)]
pub struct Shares<P> {
    rate: Option<u64>,
    peers: HashMap<P, Share>,
    waiting: usize,
}

impl<P: Peer> Shares<P> {
    /// Shares of `rate` bytes per second each (`None`: no per-peer rate).
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            peers: HashMap::new(),
            waiting: 0,
        }
    }

    fn share(&mut self, peer: P, now: Time) -> &mut Share {
        let rate = self.rate;
        self.peers.entry(peer).or_insert_with(|| Share {
            bucket: Bucket::new(rate, now),
            waiting: 0,
            connected: true,
        })
    }

    /// Bytes `peer` may be sent now without going into debt.
    pub fn allowance(&mut self, peer: P, now: Time) -> usize {
        self.share(peer, now).bucket.allowance(now)
    }

    /// Starts a read for `peer`, or says why not.
    pub fn begin(&mut self, peer: P, now: Time) -> Result<(), Busy> {
        if self.waiting >= MAX_SERVE_JOBS {
            return Err(Busy::Jobs);
        }
        let share = self.share(peer, now);
        if share.waiting >= MAX_SERVE_JOBS_PER_PEER {
            return Err(Busy::PeerJobs);
        }
        // A read is charged when it ends: the reads already waiting count
        // a chunk each against what is left, so that reads let in at once
        // cannot together run the share into more than one answer's debt.
        let reserved = share.waiting.saturating_mul(RESERVED_PER_READ);
        if !share.bucket.open(now) || (share.waiting > 0 && share.bucket.allowance(now) <= reserved)
        {
            return Err(Busy::Rate);
        }
        share.waiting += 1;
        self.waiting += 1;
        Ok(())
    }

    /// A read for `peer` ended, sending `bytes`.
    pub fn end(&mut self, peer: P, bytes: u64, now: Time) {
        let Some(share) = self.peers.get_mut(&peer) else {
            return;
        };
        if share.waiting > 0 {
            share.waiting -= 1;
            self.waiting = self.waiting.saturating_sub(1);
        }
        share.bucket.take(bytes, now);
        if !share.connected && share.waiting == 0 {
            self.peers.remove(&peer);
        }
    }

    /// `peer` is gone: its share goes once its reads are done.
    pub fn forget(&mut self, peer: &P) {
        match self.peers.get_mut(peer) {
            Some(s) if s.waiting > 0 => s.connected = false,
            Some(_) => {
                self.peers.remove(peer);
            }
            None => {}
        }
    }

    /// Reads waiting, in all.
    pub fn waiting(&self) -> usize {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_share_refuses_past_its_rate_and_its_reads() {
        let t = Time::ZERO;
        let mut s: Shares<u32> = Shares::new(Some(1000));
        // Under a chunk a second: one read waits at a time.
        assert_eq!(s.begin(1, t), Ok(()));
        assert_eq!(s.begin(1, t), Err(Busy::Rate));
        // Another peer is not held up by the first.
        assert_eq!(s.begin(2, t), Ok(()));
        s.end(1, 5000, t);
        assert_eq!(s.begin(1, t), Err(Busy::Rate));
        assert_eq!(s.begin(1, t + Duration::from_millis(3900)), Err(Busy::Rate));
        assert_eq!(s.begin(1, t + Duration::from_millis(4100)), Ok(()));
        assert_eq!(s.allowance(2, t), 1000);

        // A share of four chunks a second lets four reads wait at once,
        // and no rate lets the per-peer bound of reads hold.
        let mut s: Shares<u32> = Shares::new(Some(4 * RESERVED_PER_READ as u64));
        while s.begin(1, t).is_ok() {}
        assert_eq!(s.peers[&1].waiting, 4);
        let mut s: Shares<u32> = Shares::new(None);
        for _ in 0..MAX_SERVE_JOBS_PER_PEER {
            assert_eq!(s.begin(1, t), Ok(()));
        }
        assert_eq!(s.begin(1, t), Err(Busy::PeerJobs));
    }

    #[test]
    fn reads_in_all_are_bounded_and_a_gone_peer_is_forgotten() {
        let t = Time::ZERO;
        let mut s: Shares<u32> = Shares::new(None);
        let mut peer = 0;
        while s.begin(peer / MAX_SERVE_JOBS_PER_PEER as u32, t).is_ok() {
            peer += 1;
        }
        assert_eq!(s.waiting(), MAX_SERVE_JOBS);
        assert_eq!(s.begin(10_000, t), Err(Busy::Jobs));
        s.forget(&0);
        for _ in 0..MAX_SERVE_JOBS_PER_PEER {
            s.end(0, 10, t);
        }
        assert!(!s.peers.contains_key(&0));
        assert_eq!(s.waiting(), MAX_SERVE_JOBS - MAX_SERVE_JOBS_PER_PEER);
    }
}
