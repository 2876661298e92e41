//! Amplified decoding: a real libp2p peer answers the node's catch-up
//! summary request with millions of empty revocations, within the size
//! limit. The node refuses the reply while decoding it, holds no more than
//! its bound meanwhile, bans the peer, and still catches up from an honest
//! one. The heap is counted by the allocator of this test binary.

mod common;

use std::alloc::System;
use std::sync::Arc;

use cap::Cap;
use common::net::{DEADLINE, connect, memory_store, poll, spawn_on, wait_for};
use common::*;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use kolokol::net::wire::{self, MAX_SYNC_RESPONSE, SyncCodec, SyncRequest, SyncResponse};
use kolokol::net::{NetConfig, NodeEvent};
use kolokol::proto::bounded;
use kolokol::proto::*;
use libp2p::StreamProtocol;
use libp2p::request_response::{self, Codec, ProtocolSupport};
use libp2p::swarm::SwarmEvent;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// The body of a summary response of one publisher with `n` empty
/// revocations: one byte each on the wire.
fn amplified(publisher: &PublicKey, n: usize) -> Vec<u8> {
    let mut len_prefix = Vec::new();
    let mut len = n;
    while len >= 0x80 {
        len_prefix.push((len as u8) | 0x80);
        len >>= 7;
    }
    len_prefix.push(len as u8);
    let total = 3 + 32 + len_prefix.len() + n + 2;
    // Exactly sized, so building it leaves no peak of its own.
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&[0, 1]); // Summary, one publisher
    out.extend_from_slice(publisher.as_bytes());
    out.push(0); // no head
    out.extend_from_slice(&len_prefix);
    out.resize(out.len() + n, 0);
    out.extend_from_slice(&[0, 0]); // no ranges, no next page
    out
}

/// The catch-up codec, except that every response is the same bytes.
#[derive(Clone)]
struct Amplifier {
    body: Arc<Vec<u8>>,
}

impl Codec for Amplifier {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncRequest> {
        SyncCodec::default().read_request(p, io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncResponse> {
        SyncCodec::default().read_response(p, io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        r: SyncRequest,
    ) -> std::io::Result<()> {
        SyncCodec::default().write_request(p, io, r).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        _: SyncResponse,
    ) -> std::io::Result<()> {
        io.write_all(&(self.body.len() as u32).to_le_bytes())
            .await?;
        io.write_all(&self.body).await?;
        io.close().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amplified_summary_is_refused_within_its_bound_and_honest_catch_up_goes_on() {
    let p = Publisher::new(1);
    let n = MAX_SYNC_RESPONSE - 64;
    let body = Arc::new(amplified(&p.public(), n));
    assert!(body.len() <= MAX_SYNC_RESPONSE);

    // The decode alone: what it holds at its peak, above the input.
    let before = HEAP.allocated();
    let refused = bounded::postcard::<SyncResponse>(&body, wire::SYNC_DECODE_CEILING);
    let decode_peak = HEAP.max_allocated().saturating_sub(before);
    let err = refused.unwrap_err();
    assert!(err.is_over_limits(), "{err}");
    eprintln!(
        "{n} empty revocations in {} bytes: refused ({err}); the decode's peak was {decode_peak} bytes \
         (a plain decode holds {} bytes)",
        body.len(),
        n * 24
    );
    assert!(
        decode_peak <= bounded::budget(body.len(), wire::SYNC_DECODE_CEILING),
        "{decode_peak}"
    );
    assert!(decode_peak <= 64 * 1024, "{decode_peak}");

    // The attack, by a real peer on the real protocol.
    let config = NetConfig {
        sync_interval_secs: 3600,
        ..NetConfig::for_tests()
    };
    let mut reader = spawn_on(&[&p], memory_store(), config.clone()).await;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(kolokol::net::transport::tcp_only)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                Amplifier { body: body.clone() },
                [(
                    StreamProtocol::new(wire::SYNC_PROTOCOL),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    let liar = *swarm.local_peer_id();
    let before = HEAP.allocated();
    let peak_before = HEAP.max_allocated();
    swarm.dial(reader.addr.clone()).unwrap();
    let _liar = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            }) = swarm.select_next_some().await
            {
                let _ = swarm
                    .behaviour_mut()
                    .send_response(channel, SyncResponse::Refused);
            }
        }
    });
    wait_for(
        &mut reader.events,
        "the liar banned",
        |e| matches!(e, NodeEvent::Rejected { reason, .. } if reason.contains("over its limits")),
    )
    .await;
    poll("the liar cut off", async || {
        let s = reader.node.status().await.unwrap();
        (s.banned == 1 && s.peers.is_empty()).then_some(())
    })
    .await;
    let grew = HEAP.max_allocated().saturating_sub(before.max(peak_before));
    eprintln!(
        "the node's heap peaked {grew} bytes above where it was, reading and refusing the reply"
    );
    // The frame it reads (at most the limit), the transport's buffers,
    // and the decode's budget at most: far below the 72 MB a plain decode
    // of this reply holds.
    assert!(grew <= 2 * MAX_SYNC_RESPONSE + 4 * 1024 * 1024, "{grew}");
    assert!(reader.node.status().await.unwrap().banned >= 1);
    let _ = liar;

    // An honest peer still brings the stories.
    let honest_store = memory_store();
    store_certificate(&honest_store, &p);
    let policy = p.policy();
    let stories: Vec<_> = (1..=3u64)
        .map(|s| {
            let mut v = story(&p, s, s as u8, format!("<p>story {s}</p>").as_bytes());
            v.story = StoryId([s as u8; 16]);
            v.verified()
        })
        .collect();
    honest_store.ingest(&stories).unwrap();
    let h = policy
        .verify_head(&p.head(3, T0.plus(3600)), now())
        .unwrap();
    honest_store.record_head(&h).unwrap();
    let honest = spawn_on(&[&p], honest_store, config).await;
    connect(&mut reader, &honest).await;
    poll("the honest stories", async || {
        let s = reader.node.status().await.unwrap();
        (s.publishers.iter().map(|p| p.held).sum::<u64>() >= 3).then_some(())
    })
    .await;
    let _ = DEADLINE;
    reader.node.shutdown().await.unwrap();
}
