//! Captures: tcpdump on a router veth, its pcap parsed and each TCP flow
//! reassembled here, and a check that a byte stream is only TLS records.

use super::*;

/// tcpdump running on one of the router's veths ([`Lab::capture`]).
pub struct Capture {
    pub(super) child: Option<Child>,
    pub(super) file: PathBuf,
    pub(super) dev: String,
}

impl Capture {
    /// The TCP flows captured so far.
    pub fn flows(&self) -> Vec<Flow> {
        let bytes = std::fs::read(&self.file).unwrap_or_default();
        parse_pcap(&bytes).unwrap_or_else(|e| panic!("the capture on {}: {e}", self.dev))
    }

    /// Waits (up to [`LAB_DEADLINE`]) until `cond` holds for the flows
    /// captured so far, and returns them.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut(&[Flow]) -> bool) -> Vec<Flow> {
        let start = Instant::now();
        loop {
            let flows = self.flows();
            if cond(&flows) {
                return flows;
            }
            assert!(
                start.elapsed() < LAB_DEADLINE,
                "timed out waiting for {what} in the capture on {}: {flows:#?}",
                self.dev
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops tcpdump and returns every TCP flow it captured.
    pub fn stop(mut self) -> Vec<Flow> {
        self.end();
        self.flows()
    }

    /// The pcap file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn end(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > LAB_DEADLINE {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.end();
    }
}

/// One TCP flow of a capture, its payload reassembled each way.
#[derive(Clone, PartialEq, Eq)]
pub struct Flow {
    /// Who opened it (sent the SYN; without one, who sent first).
    pub client: SocketAddrV4,
    pub server: SocketAddrV4,
    /// The client's bytes, in sequence order, retransmissions once.
    pub to_server: Vec<u8>,
    /// The server's bytes.
    pub to_client: Vec<u8>,
    /// Packets of the flow either way.
    pub packets: usize,
    /// The client's SYN was captured (so `to_server` starts at byte 0).
    pub syn: bool,
    /// A byte range is missing: the streams stop before the first hole.
    pub holes: bool,
    /// The client sent a FIN or a RST.
    pub client_closed: bool,
    /// The server sent a FIN or a RST.
    pub server_closed: bool,
}

impl Flow {
    /// Both sides closed: the capture holds the whole flow.
    pub fn closed(&self) -> bool {
        self.client_closed && self.server_closed
    }
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = |b: &[u8]| {
            let n = b.len().min(24);
            format!(
                "{} bytes, {:?}...",
                b.len(),
                String::from_utf8_lossy(&b[..n])
            )
        };
        f.debug_struct("Flow")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("to_server", &head(&self.to_server))
            .field("to_client", &head(&self.to_client))
            .field("packets", &self.packets)
            .field("syn", &self.syn)
            .field("holes", &self.holes)
            .field("client_closed", &self.client_closed)
            .field("server_closed", &self.server_closed)
            .finish()
    }
}

/// One direction of a flow while it is read: segments by offset from the
/// first sequence number.
#[derive(Default)]
struct Stream {
    start: Option<u32>,
    segments: BTreeMap<u32, Vec<u8>>,
}

impl Stream {
    fn add(&mut self, seq: u32, syn: bool, payload: &[u8]) {
        // Data starts after the SYN's sequence number; without a SYN, at
        // the first segment seen.
        let first = seq.wrapping_add(syn as u32);
        if syn {
            self.start = Some(first);
        }
        let start = *self.start.get_or_insert(first);
        if payload.is_empty() {
            return;
        }
        let offset = first.wrapping_sub(start);
        if offset > u32::MAX / 2 {
            // Before the start: data we cannot place.
            return;
        }
        let slot = self.segments.entry(offset).or_default();
        if payload.len() > slot.len() {
            *slot = payload.to_vec();
        }
    }

    /// The bytes from the start up to the first hole, and whether there is
    /// a hole.
    fn assemble(&self) -> (Vec<u8>, bool) {
        let mut out: Vec<u8> = Vec::new();
        for (&offset, bytes) in &self.segments {
            let offset = offset as usize;
            if offset > out.len() {
                return (out, true);
            }
            let end = offset + bytes.len();
            if end > out.len() {
                out.extend_from_slice(&bytes[out.len() - offset..]);
            }
        }
        (out, false)
    }
}

/// Parses a pcap file (classic format, microsecond or nanosecond, either
/// byte order, Ethernet) and reassembles its IPv4 TCP flows, in the order
/// they first appear. A record cut off at the end (a capture still being
/// written) is left out.
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<Flow>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < 24 {
        return Err(format!("a pcap global header of {} bytes", bytes.len()));
    }
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(format!("not a pcap file: magic {}", hex::encode(magic))),
    };
    let u32_at = |b: &[u8], at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let link = u32_at(bytes, 20) & 0x0fff_ffff;
    if link != 1 {
        return Err(format!("link type {link}, not Ethernet (1)"));
    }
    let mut flows: Vec<(Flow, Stream, Stream)> = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(bytes, at + 8) as usize;
        let Some(frame) = bytes.get(at + 16..at + 16 + incl) else {
            break;
        };
        at += 16 + incl;
        let Some(seg) = tcp_segment(frame) else {
            continue;
        };
        let i = match flows.iter().position(|(f, _, _)| {
            (f.client, f.server) == (seg.src, seg.dst) || (f.client, f.server) == (seg.dst, seg.src)
        }) {
            Some(i) => i,
            None => {
                // The SYN's sender is the client; a flow seen first from
                // its SYN-ACK is the other way round.
                let (client, server) = if seg.syn && seg.ack {
                    (seg.dst, seg.src)
                } else {
                    (seg.src, seg.dst)
                };
                let flow = Flow {
                    client,
                    server,
                    to_server: Vec::new(),
                    to_client: Vec::new(),
                    packets: 0,
                    syn: false,
                    holes: false,
                    client_closed: false,
                    server_closed: false,
                };
                flows.push((flow, Stream::default(), Stream::default()));
                flows.len() - 1
            }
        };
        let (flow, up, down) = &mut flows[i];
        flow.packets += 1;
        if seg.src == flow.client {
            flow.syn |= seg.syn;
            flow.client_closed |= seg.fin_or_rst;
            up.add(seg.seq, seg.syn, seg.payload);
        } else {
            flow.server_closed |= seg.fin_or_rst;
            down.add(seg.seq, seg.syn, seg.payload);
        }
    }
    Ok(flows
        .into_iter()
        .map(|(mut flow, up, down)| {
            let (a, ha) = up.assemble();
            let (b, hb) = down.assemble();
            flow.to_server = a;
            flow.to_client = b;
            flow.holes = ha || hb;
            flow
        })
        .collect())
}

struct Segment<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    syn: bool,
    ack: bool,
    fin_or_rst: bool,
    payload: &'a [u8],
}

/// An Ethernet frame's IPv4 TCP segment, if it is one (and not a
/// fragment).
fn tcp_segment(frame: &[u8]) -> Option<Segment<'_>> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = (*ip.first()? & 0x0f) as usize * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || *ip.get(9)? != 6 {
        return None;
    }
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    if fragment != 0 {
        return None;
    }
    // The IP length, not the frame's: Ethernet pads short frames.
    let ip = ip.get(..total)?;
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    let tcp = ip.get(ihl..)?;
    let off = (*tcp.get(12)? >> 4) as usize * 4;
    let flags = *tcp.get(13)?;
    Some(Segment {
        src: SocketAddrV4::new(addr(12), u16::from_be_bytes([tcp[0], tcp[1]])),
        dst: SocketAddrV4::new(addr(16), u16::from_be_bytes([tcp[2], tcp[3]])),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        syn: flags & 0x02 != 0,
        ack: flags & 0x10 != 0,
        fin_or_rst: flags & 0x05 != 0,
        payload: tcp.get(off..)?,
    })
}

/// The largest TLS record body: 2^14 bytes plus the 2048 that a
/// ciphertext may add.
pub const MAX_TLS_RECORD: usize = (1 << 14) + 2048;

/// Checks that `bytes` is nothing but TLS records from byte 0 (content
/// type 20..=23, version 3.1 to 3.4, a length of at most
/// [`MAX_TLS_RECORD`]); the last record may be cut off where a capture
/// ends. Returns how many records (the cut one counted), or where and why
/// the stream is not TLS.
pub fn tls_records(bytes: &[u8]) -> Result<usize, String> {
    let mut at = 0;
    let mut n = 0;
    while at < bytes.len() {
        let head = &bytes[at..bytes.len().min(at + 5)];
        if let Some(&t) = head.first()
            && !(20..=23).contains(&t)
        {
            return Err(format!(
                "byte {at}: content type {t:#04x} is not a TLS record's (20..=23)"
            ));
        }
        if head.len() >= 3 && (head[1] != 3 || !(1..=4).contains(&head[2])) {
            return Err(format!(
                "byte {at}: version {:#04x}{:02x} is not TLS 1.0 to 1.3 (0x0301..=0x0304)",
                head[1], head[2]
            ));
        }
        n += 1;
        if head.len() < 5 {
            break;
        }
        let len = u16::from_be_bytes([head[3], head[4]]) as usize;
        if len > MAX_TLS_RECORD {
            return Err(format!(
                "byte {at}: a record of {len} bytes, over {MAX_TLS_RECORD}"
            ));
        }
        at += 5 + len;
    }
    Ok(n)
}
