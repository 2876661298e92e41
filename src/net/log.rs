//! The log in the actor: a mirror answering and holding readers' log
//! requests, a quiet reader's requests and their answers going to the
//! core, and the positions it keeps.

use libp2p::PeerId;
use libp2p::request_response::{self, ResponseChannel};
use tracing::debug;

use super::actor::Actor;
use super::wire::{LogRequest, LogResponse};
use super::worker::Job;
use crate::sync::{Cursor, Token};

impl Actor {
    /// A reader asked for a page of the log.
    pub(super) fn serve_log(
        &mut self,
        peer: PeerId,
        request: LogRequest,
        channel: ResponseChannel<LogResponse>,
    ) {
        if !self.config.role().serves() || self.is_banned(&peer) {
            return self.answer_log(channel, LogResponse::Refused);
        }
        if request.wait && request.from >= self.log_end {
            // Held until the log grows: a connected reader hears of a
            // story as soon as it is stored here.
            if let Some(channel) = self.held_logs.hold(peer, request.from, channel) {
                let page = self.empty_page(request.from);
                self.answer_log(channel, page);
            }
            return;
        }
        self.read_log(peer, request.from, channel);
    }

    /// Hands the reading of a page to the store thread, within the peer's
    /// serving share.
    fn read_log(&mut self, peer: PeerId, from: u64, channel: ResponseChannel<LogResponse>) {
        let now = self.now().at;
        if let Err(busy) = self.state.begin_serving(peer, now) {
            debug!("not serving the log now: {busy:?}");
            return self.answer_log(channel, LogResponse::Refused);
        }
        let back = self.peer_job(Job::ServeLog {
            peer,
            from,
            channel,
        });
        if let Some(Job::ServeLog { channel, .. }) = back {
            self.state.end_serving(peer, 0, now);
            self.answer_log(channel, LogResponse::Refused);
        }
    }

    fn empty_page(&self, from: u64) -> LogResponse {
        LogResponse::Page {
            log: self.log_id,
            certificates: Vec::new(),
            entries: Vec::new(),
            next: from.min(self.log_end),
            end: self.log_end,
        }
    }

    pub(super) fn answer_log(&mut self, channel: ResponseChannel<LogResponse>, r: LogResponse) {
        let _ = self.swarm.behaviour_mut().log.send_response(channel, r);
    }

    /// The store's log grew to `end`: held requests it answers are read.
    pub(super) fn log_grew(&mut self, end: u64) {
        self.log_end = self.log_end.max(end);
        for (peer, from, channel) in self.held_logs.grown(self.log_end) {
            self.read_log(peer, from, channel);
        }
    }

    /// Held requests whose wait is over get an empty page.
    pub(super) fn log_tick(&mut self) {
        for (_, from, channel) in self.held_logs.expired() {
            let page = self.empty_page(from);
            self.answer_log(channel, page);
        }
    }

    /// Sends a log request the core decided on.
    pub(super) fn ask_log(&mut self, peer: PeerId, token: Token, request: LogRequest) {
        let rid = self.swarm.behaviour_mut().log.send_request(&peer, request);
        self.log_requests.insert(rid, token);
    }

    /// Keeps the reader's position in a mirror's log, in the store.
    pub(super) fn save_cursor(&mut self, peer: PeerId, cursor: Cursor) {
        self.job(Job::SaveCursor {
            mirror: peer.to_bytes(),
            cursor,
        });
    }

    /// What the log behaviour reported.
    pub(super) fn log_event(&mut self, event: request_response::Event<LogRequest, LogResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve_log(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(token) = self.log_requests.remove(&request_id) {
                        let now = self.now();
                        self.state.log_response(token, Ok(response), false, now);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let unsupported = matches!(
                    error,
                    request_response::OutboundFailure::UnsupportedProtocols
                );
                if matches!(&error, request_response::OutboundFailure::Io(io) if super::wire::over_limits(io))
                {
                    let now = self.now().at;
                    self.state
                        .over_limits(peer, "log response over its limits", now);
                }
                if let Some(token) = self.log_requests.remove(&request_id) {
                    let now = self.now();
                    self.state
                        .log_response(token, Err(error.to_string()), unsupported, now);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                if matches!(&error, request_response::InboundFailure::Io(io) if super::wire::over_limits(io))
                {
                    let now = self.now().at;
                    self.state
                        .over_limits(peer, "log request over its limits", now);
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
