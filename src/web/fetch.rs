//! Reading one source's files in checked pieces over several flows.
//!
//! A content-addressed file is read against its outboard
//! ([`crate::proto::pieces`]): every piece is checked as it completes, and
//! a flow that freezes keeps what it brought, to the byte, so the next
//! flow goes on where it stopped. Flows that freeze are noticed by
//! progress ([`super::http`]), and the byte count at which they froze is
//! remembered: a censor that freezes flows after some kilobytes (as
//! Russia's TSPU does to foreign hosting) is then met with fresh
//! connections before that count, each asked for what fits, so that later
//! flows stop costing a stall at all.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::WebError;
use super::http::{Conn, HttpClient, Source};
use super::tree;
use crate::proto::BlobHash;
use crate::proto::pieces::{Assembly, Outboard, PIECE_LEN, has_outboard};

/// The first range asked of a source, before its rate is known.
const FIRST_RANGE: u64 = 64 * 1024;
/// The largest range asked.
const MAX_RANGE: u64 = 1024 * 1024;
/// Ranges are sized to take about this long at the source's rate.
const RANGE_TIME: f64 = 2.0;
/// Bytes an answer's head and TLS framing take beyond its body, kept free
/// under a learned freeze count.
const HEAD_ALLOWANCE: u64 = 1024;
/// The smallest freeze count believed: below it a stall is taken for a
/// bad path, not a byte count.
const MIN_FREEZE: u64 = 4 * 1024;
/// Requests that complete under a learned freeze count before it is
/// raised by a quarter, in case the path got better; doubled each time
/// the raised count froze again, up to [`MAX_PROBE_AFTER`].
const PROBE_AFTER: u32 = 64;
/// The longest wait between raises of the freeze count.
const MAX_PROBE_AFTER: u32 = 8192;
/// Failures in a row after which a flow gives up.
const FLOW_FAILURES: u32 = 4;

/// What is known of how a source's flows fare.
#[derive(Debug, Default)]
struct Health {
    /// Bytes read on one connection when flows froze, if they did.
    freeze_at: Option<u64>,
    /// Requests completed under the freeze count since it was last set.
    clean: u32,
    /// Clean requests before the count is raised (0: [`PROBE_AFTER`]).
    probe_after: u32,
    /// The count was raised and has not frozen since.
    probed: bool,
    /// Bytes per second, smoothed.
    rate: Option<f64>,
    /// Connections opened.
    opened: u64,
    /// Flows that stalled.
    stalls: u64,
}

/// One web source and its connections, shared by the files read from it.
pub struct Flows {
    source: Source,
    client: HttpClient,
    stall: Duration,
    flows: usize,
    idle: Mutex<Vec<Conn>>,
    health: Mutex<Health>,
}

/// Figures of a source's flows so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlowStats {
    /// Connections opened.
    pub opened: u64,
    /// Flows that stalled.
    pub stalls: u64,
    /// The byte count flows froze at, if they did.
    pub freeze_at: Option<u64>,
}

/// The pieces of one file being read by several flows.
struct Shared {
    asm: Assembly,
    claimed: Vec<bool>,
    false_piece: Option<WebError>,
}

impl Flows {
    /// Flows to `source`: at most `flows` at once, each frozen after
    /// `stall` without a byte.
    pub fn new(source: Source, client: HttpClient, stall: Duration, flows: usize) -> Self {
        Self {
            source,
            client,
            stall,
            flows: flows.clamp(1, 16),
            idle: Mutex::new(Vec::new()),
            health: Mutex::new(Health::default()),
        }
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// What the flows met so far.
    pub fn stats(&self) -> FlowStats {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        FlowStats {
            opened: h.opened,
            stalls: h.stalls,
            freeze_at: h.freeze_at,
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection that can carry a body of `want` bytes before the
    /// learned freeze count, if there is one: an idle one that has room,
    /// or a fresh one. Returns it with the body length it may ask.
    async fn conn_for(&self, want: u64) -> Result<(Conn, u64), WebError> {
        let freeze_at = self.health().freeze_at;
        let room = |c: &Conn| match freeze_at {
            None => want,
            Some(f) => (f * 7 / 8).saturating_sub(c.bytes_read() + HEAD_ALLOWANCE),
        };
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.pop()
        };
        if let Some(c) = reused {
            let r = room(&c);
            if r >= want.min(2 * 1024) {
                return Ok((c, r.min(want)));
            }
        }
        let c = self.client.connect(&self.source).await?;
        self.health().opened += 1;
        let r = room(&c).max(1024);
        Ok((c, r.min(want)))
    }

    fn put_back(&self, conn: Conn) {
        if conn.is_reusable() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.flows {
                idle.push(conn);
            }
        }
    }

    /// The range to ask now, from the rate.
    fn range_len(&self) -> u64 {
        match self.health().rate {
            None => FIRST_RANGE,
            Some(r) => ((r * RANGE_TIME) as u64).clamp(PIECE_LEN, MAX_RANGE),
        }
    }

    /// A request ended: its bytes, time and whether it stalled, on a
    /// connection that had read `conn_read` bytes.
    fn record(&self, bytes: u64, took: Duration, stalled: bool, conn_read: u64) {
        let mut h = self.health();
        if bytes >= 4 * 1024 {
            let sample = bytes as f64 / took.as_secs_f64().max(1e-3);
            h.rate = Some(h.rate.map_or(sample, |r| r * 0.7 + sample * 0.3));
        }
        if stalled {
            h.stalls += 1;
            if conn_read >= MIN_FREEZE {
                if h.freeze_at.is_none_or(|f| conn_read < f) {
                    // The source's address at debug only: a web tree's
                    // host can say which outlet the device reads.
                    info!(
                        "flows to a web source freeze after about {conn_read} bytes: \
                         fresh connections are opened before that"
                    );
                    debug!(source = self.source.url(), "the web source that freezes");
                }
                h.freeze_at = Some(h.freeze_at.map_or(conn_read, |f| f.min(conn_read)));
                h.clean = 0;
                if std::mem::take(&mut h.probed) {
                    // The censor is still there: probe less often.
                    h.probe_after = (h.probe_after.max(PROBE_AFTER) * 2).min(MAX_PROBE_AFTER);
                }
            }
            // A stalled flow is also a slow one.
            h.rate = h.rate.map(|r| r / 2.0);
        } else if let Some(f) = h.freeze_at {
            h.clean += 1;
            if h.clean >= h.probe_after.max(PROBE_AFTER) {
                h.freeze_at = Some(f + f / 4);
                h.clean = 0;
                h.probed = true;
            }
        }
    }

    /// Reads a file whose length is known or bounded, from where `have`
    /// ends, on one flow at a time: the index and outboards, which cannot
    /// be checked piece by piece. A file that changes length midway is
    /// read again from its start.
    pub async fn fetch_raw(
        &self,
        file: &str,
        max_len: u64,
        mut have: Vec<u8>,
    ) -> Result<Vec<u8>, WebError> {
        let mut failures = 0;
        let mut total: Option<u64> = None;
        loop {
            if total.is_some_and(|t| have.len() as u64 >= t) {
                return Ok(have);
            }
            let at = have.len() as u64;
            let want = total.map_or(self.range_len(), |t| t - at);
            let (mut conn, len) = match self.conn_for(want).await {
                Ok(c) => c,
                Err(e) => {
                    failures += 1;
                    if failures >= FLOW_FAILURES {
                        return Err(e);
                    }
                    continue;
                }
            };
            let started = Instant::now();
            let before = have.len();
            let result = conn
                .get(
                    &self.source,
                    file,
                    Some((at, len)),
                    max_len,
                    self.stall,
                    &mut |offset, bytes| {
                        if offset as usize != have.len() {
                            return Err(WebError::Malformed(format!("{file}: bytes out of place")));
                        }
                        if (have.len() + bytes.len()) as u64 > max_len {
                            return Err(WebError::Malformed(format!(
                                "{file}: longer than {max_len} bytes"
                            )));
                        }
                        have.extend_from_slice(bytes);
                        Ok(())
                    },
                )
                .await;
            let got = (have.len() - before) as u64;
            let read = conn.bytes_read();
            match result {
                Ok(answer) => {
                    self.record(got, started.elapsed(), false, read);
                    self.put_back(conn);
                    failures = 0;
                    let t = answer.total.unwrap_or(answer.offset + answer.len);
                    if total.is_some_and(|old| old != t) || t > max_len {
                        // The file changed under us.
                        have.clear();
                        total = None;
                        if t > max_len {
                            return Err(WebError::Malformed(format!(
                                "{file}: {t} bytes, over {max_len}"
                            )));
                        }
                        continue;
                    }
                    total = Some(t);
                    if answer.len == 0 {
                        return Ok(have);
                    }
                }
                Err(e @ (WebError::NotFound(_) | WebError::Malformed(_))) => return Err(e),
                Err(e) => {
                    let stalled = matches!(e, WebError::Stalled(_));
                    self.record(got, started.elapsed(), stalled, read);
                    if got == 0 {
                        failures += 1;
                    } else {
                        failures = 0;
                    }
                    if failures >= FLOW_FAILURES {
                        return Err(e);
                    }
                    debug!(
                        file,
                        "web flow failed, going on from byte {}: {e}",
                        have.len()
                    );
                }
            }
        }
    }

    /// Reads the content-addressed file `hash` of `len` bytes, checked
    /// piece by piece over several flows, going on from `partial` (what an
    /// earlier try kept). On failure the pieces got so far are handed back
    /// in the error's second half.
    pub async fn fetch_object(
        &self,
        hash: &[u8; 32],
        len: u64,
        partial: Option<Assembly>,
    ) -> Result<Vec<u8>, (WebError, Option<Assembly>)> {
        let blob = BlobHash(*hash);
        let asm = match partial {
            Some(a) if a.outboard().hash() == blob && a.outboard().size() == len => a,
            _ => {
                let ob_bytes = if has_outboard(len) {
                    let ob_len = Outboard::encoded_len(len) as u64;
                    self.fetch_raw(&tree::outboard_path(hash), ob_len, Vec::new())
                        .await
                        .map_err(|e| (e, None))?
                } else {
                    Vec::new()
                };
                let ob = Outboard::verify(blob, len, &ob_bytes).map_err(|e| {
                    (
                        WebError::Malformed(format!("outboard of {blob}: {e}")),
                        None,
                    )
                })?;
                Assembly::new(ob)
            }
        };
        let pieces = asm.outboard().pieces() as usize;
        let shared = Mutex::new(Shared {
            asm,
            claimed: vec![false; pieces],
            false_piece: None,
        });
        let file = tree::object_path(hash);
        let flows = self.flows.min(pieces.max(1));
        let results =
            futures::future::join_all((0..flows).map(|_| self.flow(&file, &shared))).await;
        let shared = shared.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = shared.false_piece {
            return Err((e, None));
        }
        if shared.asm.is_complete() {
            return shared
                .asm
                .finish()
                .ok_or_else(|| (WebError::Malformed("incomplete".into()), None));
        }
        let err = results
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_else(|| WebError::Http(format!("{file}: no flow got through")));
        Err((err, Some(shared.asm)))
    }

    /// Claims the next unclaimed span of unchecked pieces, at most
    /// `max_len` bytes, and where it starts.
    fn claim(shared: &Mutex<Shared>, max_len: u64) -> Option<(u64, u64, std::ops::Range<usize>)> {
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        if s.false_piece.is_some() {
            return None;
        }
        let size = s.asm.outboard().size();
        let pieces = s.claimed.len();
        let first = (0..pieces).find(|&i| !s.claimed[i] && s.asm.resume_at(i as u64).is_some())?;
        let start = s.asm.resume_at(first as u64)?;
        let mut end = start;
        let mut last = first;
        while last < pieces
            && !s.claimed[last]
            && s.asm.resume_at(last as u64).is_some()
            && end - start < max_len
        {
            end = ((last as u64 + 1) * PIECE_LEN).min(size);
            last += 1;
        }
        let len = (end - start).min(max_len.max(1));
        // Only the pieces the range reaches into are claimed.
        let reach = ((start + len - 1) / PIECE_LEN) as usize + 1;
        for c in &mut s.claimed[first..reach] {
            *c = true;
        }
        Some((start, len, first..reach))
    }

    fn unclaim(shared: &Mutex<Shared>, span: std::ops::Range<usize>) {
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        for c in &mut s.claimed[span] {
            *c = false;
        }
    }

    /// One flow: claims spans and reads them until none is left.
    async fn flow(&self, file: &str, shared: &Mutex<Shared>) -> Result<(), WebError> {
        let mut failures = 0;
        let mut last_err = None;
        loop {
            let want = self.range_len();
            let (mut conn, len) = match self.conn_for(want).await {
                Ok(c) => c,
                Err(e) => {
                    failures += 1;
                    if failures >= FLOW_FAILURES {
                        return Err(e);
                    }
                    last_err = Some(e);
                    continue;
                }
            };
            let Some((start, len, span)) = Self::claim(shared, len) else {
                self.put_back(conn);
                return last_err.map_or(Ok(()), Err);
            };
            let started = Instant::now();
            let mut got = 0u64;
            let result = conn
                .get(
                    &self.source,
                    file,
                    Some((start, len)),
                    len,
                    self.stall,
                    &mut |offset, bytes| {
                        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                        match s.asm.put(offset, bytes) {
                            Ok(put) => {
                                got += put.new_bytes;
                                Ok(())
                            }
                            Err(e) => {
                                let e = WebError::Malformed(format!("{file}: {e}"));
                                s.false_piece = Some(WebError::Malformed(e.to_string()));
                                Err(e)
                            }
                        }
                    },
                )
                .await;
            Self::unclaim(shared, span);
            let read = conn.bytes_read();
            match result {
                Ok(_) => {
                    self.record(got, started.elapsed(), false, read);
                    self.put_back(conn);
                    failures = 0;
                }
                Err(e @ (WebError::Malformed(_) | WebError::NotFound(_))) => return Err(e),
                Err(e) => {
                    let stalled = matches!(e, WebError::Stalled(_));
                    self.record(got, started.elapsed(), stalled, read);
                    failures = if got > 0 { 0 } else { failures + 1 };
                    debug!(file, "web flow ended after {got} new bytes: {e}");
                    if failures >= FLOW_FAILURES {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
    }
}
