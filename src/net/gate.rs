//! The per-address gate on incoming connections: at most so many from one
//! address and from one subnet, so that a few hosts with many peer ids
//! cannot take every incoming slot (an eclipse). libp2p's own connection
//! limits count totals only.
//!
//! An "address" is an IPv4 address or an IPv6 /64 (what one host is given);
//! a "subnet" is an IPv4 /24 or an IPv6 /48 (what one customer or one
//! hosting rack is given). Connections with no IP (memory transport) or
//! through a relay circuit (the relay's own caps hold those) are not
//! counted. Exempt peers (bootstrap peers, configured relays, reserved
//! peers) pass once their id is known and are not counted; at the pending
//! stage, before the handshake, nothing is known but the address.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};
use thiserror::Error;

/// Why the gate refused an incoming connection.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub(super) enum GateDenied {
    /// Too many incoming connections from this address already.
    #[error("too many incoming connections from one address (limit {0})")]
    Address(u32),
    /// Too many incoming connections from this subnet already.
    #[error("too many incoming connections from one subnet (limit {0})")]
    Subnet(u32),
}

impl GateDenied {
    /// A label for metrics.
    pub(super) fn label(self) -> &'static str {
        match self {
            GateDenied::Address(_) => "per_address",
            GateDenied::Subnet(_) => "per_subnet",
        }
    }
}

/// The address and subnet keys of an IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Keys {
    host: (bool, u128),
    subnet: (bool, u128),
}

fn keys(ip: IpAddr) -> Keys {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) as u128;
            Keys {
                host: (false, bits),
                subnet: (false, bits & 0xffff_ff00),
            }
        }
        IpAddr::V6(v6) => {
            // An IPv4-mapped address is the IPv4 host it names.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return keys(IpAddr::V4(v4));
            }
            let bits = u128::from(v6);
            Keys {
                host: (true, bits & !((1u128 << 64) - 1)),
                subnet: (true, bits & !((1u128 << 80) - 1)),
            }
        }
    }
}

/// The IP a connection's remote address counts under, if any.
fn remote_ip(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Whether a connection came through a front or a reverse proxy on this
/// machine: a WebSocket listener reached from loopback. Every reader
/// behind it comes from 127.0.0.1, so per-address caps would shut out
/// all but the first few; the front caps its own connections, and the
/// node's total caps still hold.
fn from_a_front(local: &Multiaddr, remote: &Multiaddr) -> bool {
    is_backend(local) && remote_ip(remote).is_some_and(|ip| ip.is_loopback())
}

/// Whether a listen address is a front's or a reverse proxy's backend: a
/// WebSocket listener on loopback.
pub(super) fn is_backend(listen: &Multiaddr) -> bool {
    let websocket = listen
        .iter()
        .any(|p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_)));
    websocket && remote_ip(listen).is_some_and(|ip| ip.is_loopback())
}

/// The gate.
#[derive(Debug)]
pub(super) struct Gate {
    per_address: u32,
    per_subnet: u32,
    exempt: HashSet<PeerId>,
    /// Incoming connections counted, pending or established, and their keys.
    counted: HashMap<ConnectionId, Keys>,
    hosts: HashMap<(bool, u128), u32>,
    subnets: HashMap<(bool, u128), u32>,
}

impl Gate {
    /// At most `per_address` incoming connections from one address and
    /// `per_subnet` from one subnet (0 counts as no cap).
    pub(super) fn new(per_address: u32, per_subnet: u32) -> Self {
        Self {
            per_address,
            per_subnet,
            exempt: HashSet::new(),
            counted: HashMap::new(),
            hosts: HashMap::new(),
            subnets: HashMap::new(),
        }
    }

    /// Lets `peer` in whatever its address.
    pub(super) fn exempt(&mut self, peer: PeerId) {
        self.exempt.insert(peer);
    }

    /// Incoming connections counted now.
    #[cfg(test)]
    fn counted(&self) -> usize {
        self.counted.len()
    }

    fn check(&mut self, k: Keys) -> Result<(), GateDenied> {
        let host = self.hosts.get(&k.host).copied().unwrap_or(0);
        if self.per_address > 0 && host >= self.per_address {
            return Err(GateDenied::Address(self.per_address));
        }
        let subnet = self.subnets.get(&k.subnet).copied().unwrap_or(0);
        if self.per_subnet > 0 && subnet >= self.per_subnet {
            return Err(GateDenied::Subnet(self.per_subnet));
        }
        Ok(())
    }

    fn count(&mut self, id: ConnectionId, k: Keys) {
        if self.counted.insert(id, k).is_none() {
            *self.hosts.entry(k.host).or_default() += 1;
            *self.subnets.entry(k.subnet).or_default() += 1;
        }
    }

    fn uncount(&mut self, id: &ConnectionId) {
        let Some(k) = self.counted.remove(id) else {
            return;
        };
        for (map, key) in [(&mut self.hosts, k.host), (&mut self.subnets, k.subnet)] {
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        if from_a_front(local, remote) {
            return Ok(());
        }
        let Some(ip) = remote_ip(remote) else {
            return Ok(());
        };
        let k = keys(ip);
        self.check(k).map_err(ConnectionDenied::new)?;
        // Counted while the handshake runs, so a burst of dials from one
        // address cannot all pass before the first is established.
        self.count(id, k);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.exempt.contains(&peer) {
            self.uncount(&id);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.uncount(&connection_id);
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.uncount(&connection_id);
            }
            // A connection denied at any stage (here or by another
            // behaviour, before or after the handshake) ends as a listen
            // failure: that frees its count.
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_to_a_websocket_listener_counts_as_a_front() {
        let a = |s: &str| -> Multiaddr { s.parse().unwrap() };
        let ws = a("/ip4/127.0.0.1/tcp/4480/ws");
        assert!(from_a_front(&ws, &a("/ip4/127.0.0.1/tcp/50000")));
        assert!(from_a_front(&ws, &a("/ip6/::1/tcp/50000")));
        assert!(!from_a_front(&ws, &a("/ip4/198.18.2.2/tcp/50000")));
        assert!(!from_a_front(
            &a("/ip4/127.0.0.1/tcp/4001"),
            &a("/ip4/127.0.0.2/tcp/5")
        ));
    }

    #[test]
    fn keys_group_hosts_and_subnets() {
        let a = keys("10.1.2.3".parse().unwrap());
        let b = keys("10.1.2.200".parse().unwrap());
        let c = keys("10.1.3.3".parse().unwrap());
        assert_ne!(a.host, b.host);
        assert_eq!(a.subnet, b.subnet);
        assert_ne!(a.subnet, c.subnet);
        let x = keys("2001:db8:1:2:aaaa::1".parse().unwrap());
        let y = keys("2001:db8:1:2:bbbb::9".parse().unwrap());
        let z = keys("2001:db8:1:ff00::1".parse().unwrap());
        let w = keys("2001:db8:2::1".parse().unwrap());
        assert_eq!(x.host, y.host, "one /64 is one host");
        assert_ne!(x.host, z.host);
        assert_eq!(x.subnet, z.subnet, "one /48 is one subnet");
        assert_ne!(x.subnet, w.subnet);
        let mapped = keys("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(mapped, a);
    }

    #[test]
    fn the_gate_counts_pending_and_frees_on_failure() {
        let mut g = Gate::new(2, 3);
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let from = |ip: &str| -> Multiaddr { format!("/ip4/{ip}/tcp/5").parse().unwrap() };
        let mut next = 0usize;
        let mut id = || {
            next += 1;
            ConnectionId::new_unchecked(next)
        };
        let (a1, a2, a3) = (id(), id(), id());
        assert!(
            g.handle_pending_inbound_connection(a1, &local, &from("10.0.0.1"))
                .is_ok()
        );
        assert!(
            g.handle_pending_inbound_connection(a2, &local, &from("10.0.0.1"))
                .is_ok()
        );
        assert!(
            g.handle_pending_inbound_connection(a3, &local, &from("10.0.0.1"))
                .is_err()
        );
        let b1 = id();
        assert!(
            g.handle_pending_inbound_connection(b1, &local, &from("10.0.0.2"))
                .is_ok()
        );
        // The /24 is full.
        assert!(
            g.handle_pending_inbound_connection(id(), &local, &from("10.0.0.3"))
                .is_err()
        );
        assert!(
            g.handle_pending_inbound_connection(id(), &local, &from("10.0.1.3"))
                .is_ok()
        );
        // No IP, or a circuit: not counted.
        let mem: Multiaddr = "/memory/5".parse().unwrap();
        assert!(
            g.handle_pending_inbound_connection(id(), &local, &mem)
                .is_ok()
        );
        let circuit: Multiaddr = "/ip4/10.0.0.1/tcp/4/p2p-circuit".parse().unwrap();
        assert!(
            g.handle_pending_inbound_connection(id(), &local, &circuit)
                .is_ok()
        );
        g.uncount(&a1);
        assert!(
            g.handle_pending_inbound_connection(id(), &local, &from("10.0.0.1"))
                .is_ok()
        );
        assert_eq!(g.counted(), 4);
    }
}
