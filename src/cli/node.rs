//! `kolokol node` and `kolokol status`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::{display, now};
use crate::node::control::ControlClient;
use crate::store::archive::ranges_text;

#[derive(Debug, Args)]
pub(super) struct NodeArgs {
    /// Listen on this multiaddress (repeatable); replaces the configured ones
    /// [default: a quiet reader 127.0.0.1 only; with --share or --mirror
    /// TCP and QUIC 4001 and WebSocket 4443 on every interface].
    #[arg(long = "listen", value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Connect to this peer at start (repeatable), e.g. /ip4/1.2.3.4/tcp/4001/p2p/12D3...
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Address of the local control API [default: 127.0.0.1, any free port].
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// Configuration file [default: DATA_DIR/config.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Find peers on the local network (mDNS), which tells everyone on it
    /// that this node runs [default: off].
    #[arg(long, conflicts_with = "no_mdns")]
    lan: bool,
    /// Switch off discovery of peers on the local network (mDNS), even if
    /// the configuration turns it on.
    #[arg(long)]
    no_mdns: bool,
    /// Serve what this node holds to peers, as a mirror does (for friends
    /// on a LAN when the border is cut): peers then learn which stories it
    /// holds and which publishers it carries. Without it (and --mirror) the
    /// node is a quiet reader that serves nothing.
    #[arg(long)]
    share: bool,
    /// Run as a mirror: carry every trusted publisher, answer the DHT,
    /// relay for peers behind NAT; no mDNS. A mirror shares: with --share
    /// too, the node is a mirror.
    #[arg(long)]
    mirror: bool,
    /// Be reachable through this relay (repeatable): a mirror's address
    /// ending in /p2p/PEER_ID. For a sharing node with no open port; a
    /// quiet reader is never reachable and refuses to start with one.
    #[arg(long = "relay", value_name = "MULTIADDR")]
    relays: Vec<String>,
    /// Tell peers they can reach this node here (repeatable).
    #[arg(long = "external", value_name = "MULTIADDR")]
    external: Vec<String>,
    /// Serve /metrics (Prometheus) and /healthz on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Carry only this publisher of the trust list (repeatable) [default: all].
    #[arg(long = "carry", value_name = "NAME")]
    carry: Vec<String>,
    /// Serve the reader's gateway on this address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", conflicts_with = "no_gateway")]
    gateway: Option<String>,
    /// Let the gateway listen on an address other than loopback, where
    /// anyone who can reach it sees what this node holds.
    #[arg(long)]
    gateway_public: bool,
    /// Do not serve the reader's gateway.
    #[arg(long)]
    no_gateway: bool,
    /// Dial every peer through this proxy: socks5h://HOST:PORT (names
    /// resolved by the proxy: Tor, Psiphon, a VPN app's local proxy),
    /// socks5://, or http:// (CONNECT). QUIC and mDNS are then off.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Trust this certificate (PEM) for mirrors reached by WebSocket
    /// inside TLS, beside the public authorities (repeatable).
    #[arg(long = "tls-root", value_name = "FILE")]
    tls_roots: Vec<PathBuf>,
    /// Read stories from this web tree too (https://HOST/PATH/, as
    /// `kolokol export --web` writes one), through the proxy if one is set
    /// (repeatable).
    #[arg(long = "web-source", value_name = "URL")]
    web_sources: Vec<String>,
    /// Run a TLS front here (e.g. 0.0.0.0:443): an ordinary web site to
    /// everyone, libp2p over WebSocket on its secret path for peers.
    #[arg(long, value_name = "ADDR", requires_all = ["front_cert", "front_key"])]
    front: Option<String>,
    /// The front's certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    front_cert: Option<PathBuf>,
    /// The front's private key (PEM).
    #[arg(long, value_name = "FILE")]
    front_key: Option<PathBuf>,
    /// The front's secret WebSocket path [default: drawn at first start,
    /// kept in DATA_DIR/front.path].
    #[arg(long, value_name = "PATH")]
    front_path: Option<String>,
    /// Seal the data directory first if it is not (asks for a new
    /// passphrase, or takes KOLOKOL_PASSPHRASE).
    #[arg(long)]
    sealed: bool,
    /// A folder of static files the front serves to everyone else.
    #[arg(long, value_name = "DIR")]
    front_site: Option<PathBuf>,
}

pub(super) fn run_node(args: NodeArgs, data: &Path) -> Result<ExitCode> {
    if args.sealed && !crate::seal::DataDir::is_sealed(data) {
        super::seal::seal(super::seal::SealArgs::default(), data)?;
    }
    // A sealed directory with no passphrase to be had starts locked.
    let opened = match super::seal::open_for_node(data) {
        Ok(dir) => Some(dir),
        Err(crate::seal::SealError::NoPassphrase) => None,
        Err(e) => return Err(e.into()),
    };
    let plain_path = args
        .config
        .clone()
        .unwrap_or_else(|| data.join("config.toml"));
    let configure: crate::node::vault::Configure = Box::new(move |dir| {
        let mut config = match dir {
            Some(d) => d.config(args.config.as_deref())?,
            None => crate::config::Config::load_layered(None, &plain_path)
                .map_err(crate::seal::SealError::from)?,
        };
        apply(&args, &mut config);
        Ok(config)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // The signal handlers first, inside the runtime: a SIGTERM while the
    // node starts then stops it once started.
    runtime.block_on(async {
        let shutdown = crate::node::shutdown_signal();
        let sealed = opened.as_ref().is_none_or(|d| d.sealed());
        let gateway = configure(None)?.gateway.enabled;
        match opened {
            // Sealed, with a gateway to unlock it from: it may lock.
            _ if sealed && gateway => {
                crate::node::vault::run_sealed(data, opened, configure, shutdown).await
            }
            Some(dir) => {
                let config = configure(Some(&dir))?;
                crate::node::run(dir, config, shutdown).await
            }
            None => Err(crate::seal::SealError::NoPassphrase.into()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Lays the command line's settings over the configured ones.
fn apply(args: &NodeArgs, config: &mut crate::config::Config) {
    if !args.listen.is_empty() {
        config.net.listen = Some(args.listen.clone());
    }
    config.net.bootstrap.extend(args.bootstrap.iter().cloned());
    if let Some(c) = &args.control {
        config.control = c.clone();
    }
    if args.lan {
        config.net.mdns = true;
    }
    if args.no_mdns {
        config.net.mdns = false;
    }
    if args.share {
        config.net.share = true;
    }
    if args.mirror {
        config.net.mirror = true;
    }
    config.net.relays.extend(args.relays.iter().cloned());
    config
        .net
        .external_addresses
        .extend(args.external.iter().cloned());
    if let Some(m) = &args.metrics {
        config.metrics = Some(m.clone());
    }
    config.carry.extend(args.carry.iter().cloned());
    if let Some(g) = &args.gateway {
        config.gateway.address = g.clone();
        config.gateway.enabled = true;
    }
    if args.gateway_public {
        config.gateway.public = true;
    }
    if args.no_gateway {
        config.gateway.enabled = false;
    }
    if let Some(p) = &args.proxy {
        config.net.proxy = Some(p.clone());
    }
    config.net.tls_roots.extend(args.tls_roots.iter().cloned());
    config.web.sources.extend(args.web_sources.iter().cloned());
    if let Some(f) = &args.front {
        config.front.listen = Some(f.clone());
    }
    if let Some(c) = &args.front_cert {
        config.front.cert = Some(c.clone());
    }
    if let Some(k) = &args.front_key {
        config.front.key = Some(k.clone());
    }
    if let Some(p) = &args.front_path {
        config.front.path = Some(p.clone());
    }
    if let Some(d) = &args.front_site {
        config.front.site = Some(d.clone());
    }
}

/// `kolokol status`.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// Print one JSON object (docs/cli-json.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// What to do about what the status shows is wrong.
fn status_advice(st: &crate::net::Status) -> Vec<String> {
    let mut advice = Vec::new();
    for p in st.publishers.iter().filter(|p| p.head_expired) {
        advice.push(format!(
            "the newest head of {} has expired: its newsroom has not been heard from lately, or someone holds its stories back; try another mirror (`kolokol peer add ADDR`)",
            p.name
        ));
    }
    if st.peers.is_empty() {
        advice.push(
            "no peers are connected, so no stories arrive: check this machine's network; give the node a mirror with `kolokol peer add /ip4/HOST/tcp/PORT/p2p/PEER_ID`; or trust a newsroom's file that lists mirrors (`kolokol trust add FILE|TEXT|URL`)"
                .to_owned(),
        );
    }
    if st.publishers.is_empty() {
        advice.push(
            "no newsroom is trusted, so there is nothing to fetch: ask a newsroom for its publisher file or text (`kolokol newsroom share` prints it) and add it with `kolokol trust add FILE|TEXT|URL`"
                .to_owned(),
        );
    }
    advice
}

fn role_word(role: crate::sync::Role) -> &'static str {
    match role {
        crate::sync::Role::Quiet => "quiet",
        crate::sync::Role::Share => "share",
        crate::sync::Role::Mirror => "mirror",
    }
}

fn status_json(st: &crate::net::Status) -> super::json::Status {
    use super::json;
    json::Status {
        format: json::FORMAT,
        locked: false,
        unlock_url: None,
        peer_id: st.peer_id.clone(),
        role: role_word(st.role).to_owned(),
        reachability: st.reachability.clone(),
        listen: st.listen.clone(),
        peers: st.peers.clone(),
        topics: st.topics.clone(),
        fetching: st.fetching as u64,
        rejected: st.rejected,
        banned: st.banned as u64,
        gossip_received: st.gossip_received,
        gossip_unique: st.gossip_unique,
        served_chunks: st.served_chunks,
        sync: (&st.sync).into(),
        log: (&st.log).into(),
        followed: st.followed as u64,
        publishers: st
            .publishers
            .iter()
            .map(|p| json::StatusPublisher {
                name: p.name.clone(),
                root_key: json::key_text_hex(&p.root_key),
                held: p.held,
                missing: json::ranges(&p.missing),
                head: match (p.head_sequence, p.head_issued_at) {
                    (Some(sequence), Some(issued_at)) => Some(json::HeadInfo {
                        sequence,
                        issued_at,
                        expired: p.head_expired,
                    }),
                    _ => None,
                },
            })
            .collect(),
        advice: status_advice(st),
    }
}

pub(super) fn status(args: StatusArgs, data: &Path) -> Result<ExitCode> {
    // Only files are read until a node answers: a status asked of a
    // directory with no node creates nothing in it.
    let Some(client) = ControlClient::for_data_dir(data) else {
        if let Some(locked) = crate::node::vault::LockedFile::read(data) {
            if args.json {
                super::json::print(&super::json::Status {
                    format: super::json::FORMAT,
                    locked: true,
                    unlock_url: Some(format!("http://{}/", locked.gateway)),
                    peer_id: String::new(),
                    role: String::new(),
                    reachability: None,
                    listen: Vec::new(),
                    peers: Vec::new(),
                    topics: Vec::new(),
                    fetching: 0,
                    rejected: 0,
                    banned: 0,
                    gossip_received: 0,
                    gossip_unique: 0,
                    served_chunks: 0,
                    sync: Default::default(),
                    log: Default::default(),
                    followed: 0,
                    publishers: Vec::new(),
                    advice: Vec::new(),
                })?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "the node on {} is locked: unlock it at http://{}/",
                display(data),
                locked.gateway
            );
            return Ok(ExitCode::SUCCESS);
        }
        if args.json {
            return Err(super::json::Failure {
                kind: super::json::Kind::NoNode,
                message: format!(
                    "no node is running on {}: start one with `kolokol node`",
                    display(data)
                ),
            }
            .into());
        }
        eprintln!("no node is running on {}", display(data));
        eprintln!(
            "advice: start one with `kolokol node` (a reader; `kolokol node --mirror` on a server that carries stories for others), leave it running, and ask again"
        );
        eprintln!(
            "advice: ask the node of another data directory with --data-dir DIR (or KOLOKOL_DATA_DIR)"
        );
        return Ok(ExitCode::FAILURE);
    };
    let st = client.status()?;
    if args.json {
        super::json::print(&status_json(&st))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("peer id:   {}  (this node's network identity)", st.peer_id);
    println!(
        "role:      {}  ({})",
        crate::node::note::role_name(st.role),
        match st.role {
            crate::sync::Role::Quiet => "serves nothing, listens only on this machine",
            crate::sync::Role::Share => "serves what it holds to its peers",
            crate::sync::Role::Mirror => "carries and serves every trusted publisher",
        }
    );
    if let Some(r) = &st.reachability {
        println!("reachable: {r}  (whether peers can dial this node)");
    }
    for a in &st.listen {
        println!("listening: {a}");
    }
    println!(
        "peers:     {}  (nodes connected now; stories come from them)",
        st.peers.len()
    );
    for p in &st.peers {
        println!("  {p}");
    }
    println!(
        "topics:    {}  (publishers whose announcements it follows)",
        st.topics.len()
    );
    println!(
        "fetching:  {} bundles; {} messages refused; {} peers banned  (refused: failed verification)",
        st.fetching, st.rejected, st.banned
    );
    println!(
        "gossip:    {} messages received, {} new; {} blob chunks served",
        st.gossip_received, st.gossip_unique, st.served_chunks
    );
    println!(
        "catch-up:  {} messages sent ({} bytes), {} received ({} bytes)  (what it asked peers it lacked)",
        st.sync.messages_sent,
        st.sync.bytes_sent,
        st.sync.messages_received,
        st.sync.bytes_received
    );
    if st.role == crate::sync::Role::Quiet || st.log.messages_sent > 0 {
        println!(
            "log:       following {} mirrors; {} messages sent ({} bytes), {} received ({} bytes)",
            st.followed,
            st.log.messages_sent,
            st.log.bytes_sent,
            st.log.messages_received,
            st.log.bytes_received
        );
    }
    for p in &st.publishers {
        println!("publisher {} ({})", p.name, &p.root_key);
        println!("  stories held: {}", p.held);
        println!(
            "  missing:      {}  (numbers the newsroom signed that this node lacks)",
            ranges_text(&p.missing)
        );
        match (p.head_sequence, p.head_issued_at) {
            (Some(seq), Some(at)) => {
                let age = now().since(crate::proto::Timestamp(at));
                println!(
                    "  newest head:  sequence {seq}, {} ago{}",
                    humantime::format_duration(std::time::Duration::from_secs(age)),
                    if p.head_expired {
                        " (EXPIRED: the feed may be frozen)"
                    } else {
                        ""
                    }
                );
            }
            _ => println!("  newest head:  none yet  (the newsroom's signed latest number)"),
        }
    }
    for a in status_advice(&st) {
        println!("advice: {a}");
    }
    Ok(ExitCode::SUCCESS)
}
