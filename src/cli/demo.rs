//! `kolokol demo`: a small network in one process. A newsroom's node, two
//! mirrors and a reader's node run on loopback, connected in a line
//! (newsroom – mirror A – mirror B – reader); the demo newsroom signs the
//! sample stories; the terminal shows each story reaching each node, and
//! the reader's gateway serves them at http://127.0.0.1:8080 until Ctrl-C.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::sync::broadcast;

use super::{display, now};
use crate::gateway::{GatewayConfig, GatewayState};
use crate::net::{NetConfig, Network, NodeEvent};
use crate::newsroom::demo;
use crate::proto::BundleId;
use crate::proto::bundle::BundleFile;
use crate::store::{Store, StoreConfig};

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Folder for the demo's newsroom and nodes [default: --data-dir if
    /// given, else a new temporary folder].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Serve the reader's gateway on this address.
    #[arg(long, value_name = "ADDR", default_value = crate::gateway::DEFAULT_ADDRESS)]
    gateway: String,
    /// Stop once every story has reached the reader and its gateway has
    /// answered, instead of serving until Ctrl-C (for scripts and tests).
    #[arg(long)]
    exit_after_publish: bool,
}

/// The demo's nodes, in the order they are connected.
const NODES: [&str; 4] = ["newsroom", "mirror-a", "mirror-b", "reader"];

/// How long the stories may take to cross the four nodes.
const DEADLINE: Duration = Duration::from_secs(60);

struct DemoNode {
    name: &'static str,
    node: Network,
    store: Arc<Store>,
    addr: libp2p::Multiaddr,
}

/// Network settings for nodes that share 127.0.0.1: no mDNS (the demo
/// stays within this process), a random port, short timers so stories
/// move in well under a second, and no penalty for sharing one address.
/// The newsroom's node shares and the mirrors are mirrors, passing the
/// stories on by gossip and catch-up; the reader is a quiet one, following
/// mirror B's log.
fn demo_net_config(name: &str) -> NetConfig {
    NetConfig {
        listen: Some(vec!["/ip4/127.0.0.1/tcp/0".into()]),
        mdns: false,
        mirror: name.starts_with("mirror"),
        share: name == "newsroom",
        heartbeat_ms: 200,
        request_timeout_secs: 5,
        fetch_deadline_secs: 30,
        same_ip_ok: true,
        ..NetConfig::default()
    }
}

async fn spawn_node(
    name: &'static str,
    data: &Path,
    publisher: &crate::trust::PublisherFile,
) -> Result<DemoNode> {
    let store_dir = data.join(name);
    let store = Arc::new(
        Store::open(&store_dir, StoreConfig::default()).with_context(|| display(&store_dir))?,
    );
    let mut policy = crate::trust::policy_of(std::slice::from_ref(publisher))?;
    store.load_trust(&mut policy, now())?;
    let node = Network::spawn(
        demo_net_config(name),
        libp2p::identity::Keypair::generate_ed25519(),
        store.clone(),
        policy,
    )
    .await
    .with_context(|| format!("starting the {name} node"))?;
    let addr = node
        .wait_listening(1, Duration::from_secs(10))
        .await?
        .pop()
        .with_context(|| format!("the {name} node does not listen"))?
        .with(libp2p::multiaddr::Protocol::P2p(node.peer_id()));
    Ok(DemoNode {
        name,
        node,
        store,
        addr,
    })
}

async fn wait_connected(
    events: &mut broadcast::Receiver<NodeEvent>,
    peer: libp2p::PeerId,
) -> Result<()> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Ok(NodeEvent::Connected(p)) if p == peer => return Ok(()),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => bail!("a node stopped"),
            }
        }
    })
    .await
    .context("the demo nodes did not connect in time")?
}

/// The most of the gateway's home page the demo reads.
const MAX_PAGE: u64 = 4 * 1024 * 1024;

/// Asks the gateway for its home page over loopback, as a browser would.
async fn gateway_answers(addr: std::net::SocketAddr) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(DEADLINE)
            .redirects(0)
            .build();
        let response = match agent.get(&format!("http://{addr}/")).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => {
                bail!("the gateway answered: {status} {}", r.status_text())
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(t).context("the gateway did not answer");
            }
        };
        if response.status() != 200 {
            bail!(
                "the gateway answered: {} {}",
                response.status(),
                response.status_text()
            );
        }
        // Read the page whole, as a browser would, so a page that breaks
        // off midway counts as no answer.
        std::io::copy(
            &mut std::io::Read::take(response.into_reader(), MAX_PAGE),
            &mut std::io::sink(),
        )
        .context("reading the gateway's home page")?;
        Ok(())
    })
    .await
    .context("asking the gateway")?
}

/// Runs the demo in `--dir`, else in the data directory given
/// (`--data-dir` or `KOLOKOL_DATA_DIR`), else in a new temporary folder.
pub(super) fn run(mut args: DemoArgs, data_dir: Option<&Path>) -> Result<ExitCode> {
    if args.dir.is_none() {
        args.dir = data_dir.map(Path::to_owned);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: DemoArgs) -> Result<ExitCode> {
    let dir = match args.dir {
        Some(d) => d,
        None => {
            std::env::temp_dir().join(format!("kolokol-demo-{}-{}", std::process::id(), now().0))
        }
    };
    fs::create_dir_all(&dir).with_context(|| display(&dir))?;
    // The gateway's port first: if it is taken, say so before anything runs.
    let listener = crate::gateway::bind(&GatewayConfig {
        enabled: true,
        address: args.gateway.clone(),
        public: false,
    })
    .await?;
    let gateway_addr = listener.local_addr()?;

    println!("Kolokol demo in {}", display(&dir));
    println!("The demo newsroom's secret keys are public: it exists only for this demo.\n");
    let articles = dir.join("articles");
    fs::create_dir_all(&articles).with_context(|| display(&articles))?;
    for (name, bytes) in demo::SAMPLES {
        let p = articles.join(name);
        fs::write(&p, bytes).with_context(|| display(&p))?;
    }
    let newsroom_dir = dir.join("newsroom");
    let newsroom = demo::open_or_init(&newsroom_dir, now())?;
    let publisher = newsroom.public_file();
    println!(
        "newsroom {} signs with root key {}",
        newsroom.config().name,
        newsroom.root_public()
    );
    // Sign the samples once; a demo folder used again shows them again.
    let mut bundles: Vec<(BundleId, BundleFile, String)> = Vec::new();
    if newsroom.published_count()? == 0 {
        demo::publish_samples(&newsroom, now())?;
    }
    for entry in newsroom.published()? {
        let path = newsroom.published_path(&entry);
        let (id, m) = crate::newsroom::read_manifest(&path)?;
        let f = fs::File::open(&path).with_context(|| display(&path))?;
        let file = BundleFile::read(std::io::BufReader::new(f)).with_context(|| display(&path))?;
        bundles.push((
            id,
            file,
            format!("#{} {} “{}”", m.sequence, m.kind.as_str(), m.metadata.title),
        ));
    }

    // Each node keeps its own store; they start empty on every run so the
    // stories visibly travel.
    let nodes_dir = dir.join("nodes");
    let _ = fs::remove_dir_all(&nodes_dir);
    let mut nodes = Vec::new();
    for name in NODES {
        nodes.push(spawn_node(name, &nodes_dir, &publisher).await?);
    }
    for i in 1..nodes.len() {
        let mut events = nodes[i].node.events();
        nodes[i].node.dial(nodes[i - 1].addr.clone()).await?;
        wait_connected(&mut events, nodes[i - 1].node.peer_id()).await?;
        println!("{} connected to {}", nodes[i].name, nodes[i - 1].name);
    }

    // Listen for arrivals before anything is published.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::channel::<(usize, BundleId)>(256);
    let mut watchers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut events = n.node.events();
        let tx = arrived_tx.clone();
        watchers.push(tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(NodeEvent::Stored(id)) => {
                        if tx.send((i, id)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }));
    }
    drop(arrived_tx);

    println!(
        "\nthe newsroom's node publishes {} bundles; each node verifies each one before it keeps it:\n",
        bundles.len()
    );
    let started = Instant::now();
    let names: HashMap<BundleId, String> =
        bundles.iter().map(|(id, _, t)| (*id, t.clone())).collect();
    for (_, file, _) in &bundles {
        nodes[0].node.publish(file.clone()).await?;
    }
    let mut times: HashMap<(usize, BundleId), Duration> = HashMap::new();
    let wanted = bundles.len() * nodes.len();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while times.len() < wanted {
        match tokio::time::timeout_at(deadline, arrived.recv()).await {
            Ok(Some((i, id))) if names.contains_key(&id) => {
                if let std::collections::hash_map::Entry::Vacant(e) = times.entry((i, id)) {
                    let t = started.elapsed();
                    e.insert(t);
                    println!(
                        "  {:>7.1} ms  {:<9} verified and stored {}",
                        t.as_secs_f64() * 1000.0,
                        nodes[i].name,
                        names[&id]
                    );
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    for w in watchers {
        w.abort();
    }
    let reader = nodes.len() - 1;
    let missing: Vec<&String> = bundles
        .iter()
        .filter(|(id, _, _)| !times.contains_key(&(reader, *id)))
        .map(|(_, _, t)| t)
        .collect();
    if missing.is_empty() {
        let last = times
            .iter()
            .filter(|((i, _), _)| *i == reader)
            .map(|(_, t)| *t)
            .max()
            .unwrap_or_default();
        println!(
            "\nall {} bundles reached the reader, three hops away, in {:.0} ms.",
            bundles.len(),
            last.as_secs_f64() * 1000.0
        );
    } else {
        println!("\nnot every bundle reached the reader in time; missing:");
        for m in &missing {
            println!("  {m}");
        }
    }

    let reader_node = &nodes[reader];
    let state = GatewayState::new(reader_node.store.clone(), vec![publisher.clone()])
        .node(reader_node.node.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::gateway::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    println!(
        "\nthe reader's gateway: http://{gateway_addr}/  (stories, verification, feeds at /feed.atom, API at /api/v1/)"
    );
    println!(
        "Try also: kolokol inspect {}",
        display(&newsroom_dir.join("published").join("0000000001.kolokol"))
    );

    let result = if args.exit_after_publish {
        if !missing.is_empty() {
            Err(anyhow::anyhow!(
                "{} bundles did not reach the reader",
                missing.len()
            ))
        } else {
            gateway_answers(gateway_addr)
                .await
                .map(|()| println!("the gateway answered; stopping."))
        }
    } else {
        println!("Press Ctrl-C to stop.");
        crate::node::shutdown_signal().await;
        Ok(())
    };
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    for n in &nodes {
        let _ = n.node.shutdown().await;
        let _ = n.store.flush();
    }
    result.map(|()| ExitCode::SUCCESS)
}
