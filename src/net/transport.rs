//! The node's transports: TCP, WebSocket (plain, or inside TLS on 443 as
//! `/tls/sni/NAME/ws`), QUIC, each through a proxy when one is set, and
//! the security upgrade that answers only dialers who name the node.
//!
//! Noise, as libp2p runs it, tells anyone who dials an address the
//! listener's peer id, and then identify and every protocol name. Here
//! both ends mix a *prologue* into the handshake: the listener its own
//! peer id's, the dialer the id it expects (from `/p2p/ID` of the
//! address it dials). Noise hashes the prologue into every message, so a
//! dialer that does not know the id fails on the listener's first reply,
//! before it can decrypt the listener's key: a censor that scans an
//! address learns nothing of who answers, nor that it is Kolokol. QUIC
//! has no prologue (its TLS sends the id to anyone); it is for friendly
//! networks, and a mirror behind a front does not listen on it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, timeout::TransportTimeout};
use libp2p::core::upgrade::{
    InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo, Version,
};
use libp2p::core::{ConnectedPoint, Negotiated, Transport};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, dns, noise, quic, tcp, websocket, yamux};

use super::proxy::{Io, Proxy, ProxyTransport};
use super::{NetConfig, NetError};

/// How long a connection may take from the first byte to a secured,
/// multiplexed link, handshake and proxy aside.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);

/// The prologue both ends of a connection to `peer` mix into Noise.
pub fn prologue(peer: &PeerId) -> Vec<u8> {
    blake3::Hasher::new_derive_key("kolokol 2026-12 noise prologue v1")
        .update(&peer.to_bytes())
        .finalize()
        .as_bytes()
        .to_vec()
}

/// The peer id an address names (`.../p2p/ID`), if it does.
fn named_peer(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().last().and_then(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// Whether an address ends in `/p2p/ID`, as every address dialed must:
/// without the id the handshake fails (see the module documentation).
pub fn names_a_peer(addr: &Multiaddr) -> bool {
    named_peer(addr).is_some()
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

/// Whether this end runs the handshake as its initiator: it dialed, and
/// hole punching (DCUtR's simultaneous open) did not make it the
/// responder. As libp2p's own upgrade decides.
fn initiates(endpoint: &ConnectedPoint) -> bool {
    matches!(endpoint, ConnectedPoint::Dialer { role_override, .. } if role_override.is_dialer())
}

/// Noise for `key` with the prologue of `endpoint` (see the module
/// documentation).
pub fn noise_for(key: &Keypair, endpoint: &ConnectedPoint) -> io::Result<noise::Config> {
    // The responder's id: the dialed peer's, unless this end answers
    // (a listener, or a dialer whose role hole punching turned around).
    let prologue = match endpoint {
        // A dialer that names no peer mixes none, and so reaches no
        // Kolokol node: bootstrap addresses carry the id.
        ConnectedPoint::Dialer { address, .. } if initiates(endpoint) => named_peer(address)
            .map(|p| prologue(&p))
            .unwrap_or_default(),
        _ => prologue(&key.public().to_peer_id()),
    };
    Ok(noise::Config::new(key)
        .map_err(other)?
        .with_prologue(prologue))
}

/// Negotiates Noise with the prologue of `endpoint`, then yamux: what
/// libp2p's upgrade builder does, with the prologue chosen per
/// connection.
pub async fn secure<S>(
    io: S,
    endpoint: ConnectedPoint,
    key: Keypair,
) -> io::Result<(PeerId, StreamMuxerBox)>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let noise = noise_for(&key, &endpoint)?;
    secure_with(io, endpoint, noise).await
}

/// [`secure`] with a security upgrade of the caller's (Noise from
/// [`noise_for`], wrapped): for tests that record what a peer sends.
pub async fn secure_with<S, U, O, E>(
    io: S,
    endpoint: ConnectedPoint,
    upgrade: U,
) -> io::Result<(PeerId, StreamMuxerBox)>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    U: UpgradeInfo
        + InboundConnectionUpgrade<Negotiated<S>, Output = (PeerId, O), Error = E>
        + OutboundConnectionUpgrade<Negotiated<S>, Output = (PeerId, O), Error = E>,
    U::Info: AsRef<str> + Clone,
    O: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    use multistream_select::{dialer_select_proto, listener_select_proto};
    let yamux = yamux::Config::default();
    if initiates(&endpoint) {
        let (name, io) = dialer_select_proto(io, upgrade.protocol_info(), Version::V1Lazy)
            .await
            .map_err(other)?;
        let (peer, io) = upgrade.upgrade_outbound(io, name).await.map_err(other)?;
        let (name, io) = dialer_select_proto(io, yamux.protocol_info(), Version::V1Lazy)
            .await
            .map_err(other)?;
        let muxer = yamux.upgrade_outbound(io, name).await?;
        Ok((peer, StreamMuxerBox::new(muxer)))
    } else {
        let (name, io) = listener_select_proto(io, upgrade.protocol_info())
            .await
            .map_err(other)?;
        let (peer, io) = upgrade.upgrade_inbound(io, name).await.map_err(other)?;
        let (name, io) = listener_select_proto(io, yamux.protocol_info())
            .await
            .map_err(other)?;
        let muxer = yamux.upgrade_inbound(io, name).await?;
        Ok((peer, StreamMuxerBox::new(muxer)))
    }
}

/// The TCP dialer: through the proxy when one is set (which then
/// resolves names), else directly, names resolved by the system's
/// resolver.
fn tcp_base(proxy: Option<&Proxy>) -> Result<Boxed<Box<dyn Io>>, NetError> {
    match proxy {
        Some(p) => Ok(ProxyTransport::new(p.clone()).boxed()),
        None => {
            let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
            let dns = dns::tokio::Transport::system(tcp)
                .map_err(|e| NetError::Setup(format!("reading the system's DNS settings: {e}")))?;
            Ok(dns
                .map(|s, _| Box::new(s) as Box<dyn Io>)
                .map_err(other)
                .boxed())
        }
    }
}

/// The extra trust anchors of `tls_roots` (PEM files), for mirrors whose
/// certificate is not from a public authority (a lab's, a newsroom's own).
fn websocket_tls(roots: &[PathBuf]) -> Result<websocket::tls::Config, NetError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut builder = websocket::tls::Config::builder();
    for path in roots {
        let text = crate::files::read_bounded_text(path, 1024 * 1024)?;
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
            let cert = cert.map_err(|e| {
                NetError::Setup(format!("{}: not a PEM certificate: {e}", path.display()))
            })?;
            builder
                .add_trust(&websocket::tls::Certificate::new(cert.to_vec()))
                .map_err(|e| NetError::Setup(format!("{}: {e}", path.display())))?;
            n += 1;
        }
        if n == 0 {
            return Err(NetError::Setup(format!(
                "{}: holds no PEM certificate",
                path.display()
            )));
        }
    }
    Ok(builder.finish())
}

/// Every transport of the node, secured and multiplexed; relayed
/// connections are added by the swarm builder.
///
/// WebSocket comes first: it refuses any other address at once, where
/// the DNS layer takes every address and fails later. It resolves names
/// itself (below TLS, which needs the name for SNI); TCP and QUIC share a
/// DNS layer above them.
pub fn build(
    key: &Keypair,
    config: &NetConfig,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetError> {
    let proxy = config.proxy.as_deref().map(Proxy::parse).transpose()?;
    let mut ws = websocket::Config::new(tcp_base(proxy.as_ref())?);
    ws.set_tls_config(websocket_tls(&config.tls_roots)?);
    let key_ws = key.clone();
    let ws = ws
        .map_err(other)
        .and_then(move |io, endpoint| secure(io, endpoint, key_ws));
    let key_tcp = key.clone();
    if let Some(proxy) = proxy {
        // UDP cannot pass the proxy, and must not go around it: no QUIC.
        // Names go to the proxy unresolved.
        let tcp =
            ProxyTransport::new(proxy).and_then(move |io, endpoint| secure(io, endpoint, key_tcp));
        return Ok(TransportTimeout::new(ws.or_transport(tcp), UPGRADE_TIMEOUT)
            .map(|either, _| either.into_inner())
            .map_err(other)
            .boxed());
    }
    let tcp = TransportTimeout::new(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .and_then(move |io, endpoint| secure(io, endpoint, key_tcp)),
        UPGRADE_TIMEOUT,
    );
    let quic = quic::tokio::Transport::new(quic::Config::new(key))
        .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)));
    let direct =
        dns::tokio::Transport::system(tcp.or_transport(quic).map(|either, _| either.into_inner()))
            .map_err(|e| NetError::Setup(format!("reading the system's DNS settings: {e}")))?;
    Ok(TransportTimeout::new(ws, UPGRADE_TIMEOUT)
        .or_transport(direct)
        .map(|either, _| either.into_inner())
        .map_err(other)
        .boxed())
}

/// The transport of [`build`] with only TCP, for tests' own swarms that
/// talk to real nodes.
pub fn tcp_only(key: &Keypair) -> Boxed<(PeerId, StreamMuxerBox)> {
    let key = key.clone();
    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .and_then(move |io, endpoint| secure(io, endpoint, key))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::Endpoint;
    use libp2p::core::transport::PortUse;

    /// Runs Noise, with the prologues [`noise_for`] picks, over a loopback
    /// TCP pair, `a` as `a_end`, `b` as `b_end`; the peer id each got.
    /// (Noise alone: a lazy yamux would wait for a muxer nobody polls.)
    async fn handshake(
        a: &Keypair,
        a_end: ConnectedPoint,
        b: &Keypair,
        b_end: ConnectedPoint,
    ) -> (io::Result<PeerId>, io::Result<PeerId>) {
        async fn run(
            key: &Keypair,
            end: ConnectedPoint,
            io: tcp::tokio::TcpStream,
        ) -> io::Result<PeerId> {
            let noise = noise_for(key, &end)?;
            let info = noise.protocol_info().next().unwrap();
            let peer = if initiates(&end) {
                noise.upgrade_outbound(io, info).await.map_err(other)?.0
            } else {
                noise.upgrade_inbound(io, info).await.map_err(other)?.0
            };
            Ok(peer)
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sa, sb) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (sa, sb) = (
            tcp::tokio::TcpStream(sa.unwrap()),
            tcp::tokio::TcpStream(sb.unwrap().0),
        );
        let limit = Duration::from_secs(5);
        let (ra, rb) = tokio::join!(
            tokio::time::timeout(limit, run(a, a_end, sa)),
            tokio::time::timeout(limit, run(b, b_end, sb)),
        );
        let flat = |r: Result<io::Result<PeerId>, _>| {
            r.unwrap_or_else(|_| Err(io::Error::other("timed out")))
        };
        (flat(ra), flat(rb))
    }

    fn dialer(to: &PeerId, role: Endpoint) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: format!("/ip4/127.0.0.1/tcp/1/p2p/{to}").parse().unwrap(),
            role_override: role,
            port_use: PortUse::Reuse,
        }
    }

    fn listener() -> ConnectedPoint {
        ConnectedPoint::Listener {
            local_addr: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            send_back_addr: "/ip4/127.0.0.1/tcp/2".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn the_handshake_needs_the_responders_id_however_the_roles_came() {
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (ida, idb) = (a.public().to_peer_id(), b.public().to_peer_id());
        // A dials B by its id.
        let (ra, rb) = handshake(&a, dialer(&idb, Endpoint::Dialer), &b, listener()).await;
        assert_eq!((ra.unwrap(), rb.unwrap()), (idb, ida));
        // Hole punching: both dialed, B answers as the responder.
        let (ra, rb) = handshake(
            &a,
            dialer(&idb, Endpoint::Dialer),
            &b,
            dialer(&ida, Endpoint::Listener),
        )
        .await;
        assert_eq!((ra.unwrap(), rb.unwrap()), (idb, ida));
        // A dialer that names someone else, or no one, gets nowhere.
        let other = Keypair::generate_ed25519().public().to_peer_id();
        let (ra, _) = handshake(&a, dialer(&other, Endpoint::Dialer), &b, listener()).await;
        assert!(ra.is_err());
        let bare = ConnectedPoint::Dialer {
            address: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        let (ra, _) = handshake(&a, bare, &b, listener()).await;
        assert!(ra.is_err());
    }

    #[test]
    fn the_prologue_is_the_peers_own() {
        let a = Keypair::generate_ed25519().public().to_peer_id();
        let b = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(prologue(&a), prologue(&a));
        assert_ne!(prologue(&a), prologue(&b));
        let addr: Multiaddr = format!("/ip4/1.2.3.4/tcp/443/tls/ws/p2p/{a}")
            .parse()
            .unwrap();
        assert_eq!(named_peer(&addr), Some(a));
        assert_eq!(named_peer(&"/ip4/1.2.3.4/tcp/1".parse().unwrap()), None);
    }
}
