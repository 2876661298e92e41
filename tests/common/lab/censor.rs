//! The censor: nftables rule sets for the ROUTER, and the shaping of the
//! inside link.

use super::*;

/// The router's censor, built up rule by rule and applied with
/// [`Lab::censor`] as one nftables ruleset in the ROUTER's forward hook.
///
/// Drop rules apply first. Then, if any allow rule was given
/// ([`Censor::tls_only_on_443`], [`Censor::only_tcp_to`]), only what one
/// of them allows is forwarded and everything else is dropped.
#[derive(Clone, Debug, Default)]
pub struct Censor {
    block_ips: Vec<Ipv4Addr>,
    drop_udp: bool,
    drop_prefixes: Vec<Vec<u8>>,
    tls_only_443: bool,
    only_tcp_to: Vec<SocketAddrV4>,
}

/// The longest payload prefix a [`Censor`] matches on.
pub const MAX_PREFIX: usize = 64;

/// The bits nftables compares in one raw payload match.
const MATCH_BITS: usize = 128;

impl Censor {
    /// No censor: everything is forwarded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops, both ways, every TCP segment whose payload starts with
    /// `prefix` (1 to [`MAX_PREFIX`] bytes), e.g. `b"\x13/multistream/1.0.0\n"`,
    /// the first bytes of every libp2p TCP connection. A prefix split over
    /// two segments is not seen, as by a censor that does not reassemble.
    pub fn drop_payload_prefix(mut self, prefix: &[u8]) -> Self {
        assert!(
            (1..=MAX_PREFIX).contains(&prefix.len()),
            "a prefix of {} bytes (1..={MAX_PREFIX})",
            prefix.len()
        );
        self.drop_prefixes.push(prefix.to_vec());
        self
    }

    /// Drops all UDP (QUIC with it).
    pub fn drop_udp(mut self) -> Self {
        self.drop_udp = true;
        self
    }

    /// Allows TCP to port 443 whose first payload byte from the client is
    /// 0x16 (a TLS handshake record): the flow's first data packet marks it
    /// (conntrack mark 1 for TLS, 2 for anything else) and a flow marked 2
    /// is dropped both ways from that packet on. Server data before the
    /// client's is dropped too.
    pub fn tls_only_on_443(mut self) -> Self {
        self.tls_only_443 = true;
        self
    }

    /// Allows TCP to `addr` (a proxy, say) and its answers.
    pub fn only_tcp_to(mut self, addr: SocketAddrV4) -> Self {
        self.only_tcp_to.push(addr);
        self
    }

    /// Drops everything to and from `ip`.
    pub fn block_ip(mut self, ip: Ipv4Addr) -> Self {
        self.block_ips.push(ip);
        self
    }

    /// The ruleset for `nft -f -`: it replaces the table `inet censor`.
    /// The rules see what the router forwards, and what the router's own
    /// sockets (the delay relay's, say) exchange over `towards_outside`,
    /// its veth towards OUTSIDE.
    pub fn ruleset(&self, towards_outside: &str) -> String {
        let mut f = String::new();
        let allow_list = self.tls_only_443 || !self.only_tcp_to.is_empty();
        let mut r = |line: String| {
            f.push_str("    ");
            f.push_str(&line);
            f.push('\n');
        };
        for ip in &self.block_ips {
            r(format!("ip saddr {ip} drop"));
            r(format!("ip daddr {ip} drop"));
        }
        if self.drop_udp {
            r("meta l4proto udp drop".into());
        }
        for prefix in &self.drop_prefixes {
            r(format!("meta l4proto tcp {} drop", payload_match(prefix)));
        }
        if self.tls_only_443 {
            r("meta l4proto tcp ct original proto-dst 443 jump tls_first".into());
        }
        for a in &self.only_tcp_to {
            r(format!(
                "meta l4proto tcp ct original ip daddr {} ct original proto-dst {} accept",
                a.ip(),
                a.port()
            ));
        }
        if allow_list {
            r("drop".into());
        }
        let mut text =
            String::from("table inet censor {}\ndelete table inet censor\ntable inet censor {\n");
        if self.tls_only_443 {
            text.push_str(
                "  chain tls_first {\n    \
                 ct mark 2 drop\n    \
                 ct mark 0 ct direction original @ih,0,8 0x16 ct mark set 1\n    \
                 ct mark 0 ct direction original @ih,0,8 != 0x16 ct mark set 2 drop\n    \
                 ct mark 0 ct direction reply @ih,0,8 & 0x00 == 0x00 drop\n    \
                 accept\n  }\n",
            );
        }
        text.push_str("  chain rules {\n");
        text.push_str(&f);
        let _ = write!(
            text,
            "  }}\n  \
             chain forward {{\n    type filter hook forward priority filter; policy accept;\n    \
             jump rules\n  }}\n  \
             chain input {{\n    type filter hook input priority filter; policy accept;\n    \
             iifname \"{towards_outside}\" jump rules\n  }}\n  \
             chain output {{\n    type filter hook output priority filter; policy accept;\n    \
             oifname \"{towards_outside}\" jump rules\n  }}\n}}\n"
        );
        text
    }
}

/// `@ih,0,128 0x... @ih,128,N 0x...`: the payload starts with `prefix`,
/// in matches of at most [`MATCH_BITS`] bits each.
fn payload_match(prefix: &[u8]) -> String {
    prefix
        .chunks(MATCH_BITS / 8)
        .enumerate()
        .map(|(i, chunk)| {
            format!(
                "@ih,{},{} 0x{}",
                i * MATCH_BITS,
                chunk.len() * 8,
                hex::encode(chunk)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A shaping of the link between the router and INSIDE ([`Lab::shape`]),
/// each way. The default shapes nothing.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    /// Added each way: to every packet by netem where the kernel has
    /// it; else to every chunk of every TCP connection from INSIDE by a
    /// relay in ROUTER (UDP is then not delayed, a connection opens at
    /// once, even to a blocked host, and the mirror sees it come from the
    /// router's 198.18.1.1). [`Lab::has_netem`] says which.
    pub delay: Option<Duration>,
    /// Each way, in kbit/s (tbf; netem's rate when there is a delay).
    pub rate_kbit: Option<u32>,
    /// Packets dropped at random, each way, in percent (nft numgen).
    pub loss_percent: Option<u8>,
    /// Every TCP flow from INSIDE freezes after this many bytes from the
    /// server, as Russia's TSPU freezes flows to foreign hosting after
    /// 16-20 KB: the relay in ROUTER passes nothing more either way and
    /// sends no reset or end; the flow just stops.
    pub freeze_after: Option<u64>,
}
