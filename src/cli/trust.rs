//! `kolokol trust`.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::printable;
use crate::trust::PublisherFile;
use crate::trust::share;

#[derive(Debug, Subcommand)]
pub(super) enum TrustCommand {
    /// Trust the publisher a publisher file describes. The file may come as
    /// a path (from `keys/` or a newsroom), as its one-line text
    /// (`kolokol-publisher:...`, from `kolokol newsroom share`), from an
    /// http:// or https:// URL, or on standard input (`-`). Its
    /// fingerprint and mirrors are shown first: compare the fingerprint
    /// with the one the newsroom gives (`kolokol newsroom info`).
    #[command(after_long_help = super::help::TRUST_ADD)]
    Add {
        /// A publisher file, its text, a URL of either, or `-`.
        source: String,
        /// Show what the file says, and add nothing.
        #[arg(long)]
        dry_run: bool,
        /// Fetch a URL through this proxy (socks5h://HOST:PORT, socks5://,
        /// http://), as `kolokol node --proxy`; `proxy` in config.toml
        /// when not given. Without either, a URL is fetched directly.
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
    },
    /// List trusted publishers.
    #[command(after_long_help = super::help::TRUST_LIST)]
    List {
        /// Print one JSON object (docs/cli-json.md) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a publisher.
    Remove {
        /// The publisher's name.
        name: String,
    },
}

/// Most bytes read of a publisher file or its text, from a file, a URL
/// or standard input: room for a text at its limit, wrapped by a chat app.
const MAX_INPUT: u64 = 2 * crate::trust::share::MAX_TEXT as u64;
/// Time allowed to connect to a URL.
const URL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole fetch of a URL.
const URL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a publisher file came from, for messages.
struct Input {
    /// The file's TOML text.
    toml: String,
    /// Its source, as the user named it.
    label: String,
}

/// Reads the publisher file `source` names: a path, a URL, its text, or
/// `-` for standard input; a text is unwrapped to the file it holds.
fn read_input(source: &str, proxy: Option<&str>) -> Result<Input> {
    let (raw, label) = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_string(&mut text)
            .context("reading the publisher file from standard input")?;
        if text.len() as u64 > MAX_INPUT {
            bail!("standard input is too large for a publisher file (over {MAX_INPUT} bytes)");
        }
        (text, "standard input".to_owned())
    } else if share::is_text(source) {
        (source.to_owned(), "the text given".to_owned())
    } else if source.starts_with("https://") || source.starts_with("http://") {
        (fetch(source, proxy)?, source.to_owned())
    } else {
        let path = Path::new(source);
        let text = crate::files::read_bounded_text(path, MAX_INPUT).with_context(|| {
            format!("{source} is not a URL or a publisher text, and not a readable file")
        })?;
        (text, super::display(path))
    };
    let toml = if share::is_text(&raw) {
        share::decode_text(&raw).with_context(|| label.clone())?
    } else {
        raw
    };
    Ok(Input { toml, label })
}

/// Fetches a publisher file or its text from `url`, bounded in time and
/// size. The URL is the user's own choice, so one on this machine or the
/// local network is fetched too.
fn fetch(url: &str, proxy: Option<&str>) -> Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    let mut fetcher =
        crate::newsroom::fetch::Fetcher::new(URL_CONNECT_TIMEOUT, URL_TIMEOUT).allow_local(true);
    // Named by host and port only: a proxy URL may hold a password.
    let mut via = String::new();
    match proxy {
        Some(p) => {
            let p = crate::net::proxy::Proxy::parse(p).context("--proxy")?;
            fetcher = fetcher.via_proxy(&p)?;
            via = format!(" through the proxy {}:{}", p.host, p.port);
        }
        // Said, because whoever watches the network sees which server
        // was asked (and, over plain http, for what).
        None => eprintln!(
            "note: fetching {} directly, not through a proxy (--proxy, or `proxy` in config.toml)",
            parsed.host_str().unwrap_or_default()
        ),
    }
    let fetched = fetcher.get(&parsed, MAX_INPUT, None).map_err(|e| match e {
        crate::newsroom::fetch::FetchError::Status { status, .. } => {
            anyhow::anyhow!("fetching {url}{via} failed with status {status}")
        }
        crate::newsroom::fetch::FetchError::Transport { reason, .. } => {
            anyhow::anyhow!("fetching {url}{via} failed: {reason}")
        }
        e => anyhow::anyhow!("fetching {url}{via} failed: {e}"),
    })?;
    String::from_utf8(fetched.bytes)
        .map_err(|_| anyhow::anyhow!("{url} is not a publisher file (not UTF-8 text)"))
}

/// Shows what a publisher file says, before it is trusted.
fn show(p: &PublisherFile) {
    let shown = printable(p.shown_name());
    if shown == p.name {
        println!("publisher:   {}", p.name);
    } else {
        println!("publisher:   {shown} ({})", p.name);
    }
    println!("fingerprint: {}", share::fingerprint(&p.root_key));
    println!("root key:    {}", p.root_key);
    if let Some(h) = &p.homepage {
        println!("homepage:    {}", printable(h));
    }
    let mirrors = p.mirror_addresses();
    if mirrors.is_empty() {
        println!("mirrors:     none (the node finds its stories only through peers it knows)");
    }
    for m in mirrors {
        println!("mirror:      {}", printable(&m));
    }
}

impl TrustCommand {
    /// Whether `--json` output was asked for.
    pub(super) fn json(&self) -> bool {
        matches!(self, TrustCommand::List { json: true })
    }
}

pub(super) fn run(cmd: TrustCommand, data: &Path) -> Result<ExitCode> {
    match cmd {
        TrustCommand::Add {
            source,
            dry_run,
            proxy,
        } => {
            // The proxy the node is set to use, unless one is given.
            let proxy = match proxy {
                Some(p) => Some(p),
                None => crate::config::Config::load(data)?.net.proxy,
            };
            let input = read_input(&source, proxy.as_deref())?;
            let p = PublisherFile::parse(&input.toml, Path::new(&input.label))
                .with_context(|| format!("{} is not a valid publisher file", input.label))?;
            show(&p);
            if p.is_demo() {
                eprintln!(
                    "warning: {} is the DEMO newsroom; its secret key is public, so anyone can sign as it. Never trust it for real news.",
                    p.name
                );
            }
            if dry_run {
                println!("not added (--dry-run)");
                return Ok(ExitCode::SUCCESS);
            }
            match crate::node::control::ControlClient::for_data_dir(data) {
                // The running node writes the trust list, subscribes and
                // dials the mirrors the file names.
                Some(client) => {
                    if client.trust(&p.to_toml())? {
                        println!("the running node carries it from now on and dials its mirrors");
                    } else {
                        println!(
                            "the running node trusts it but does not carry it: its carry list (--carry, `carry` in config.toml) leaves it out"
                        );
                    }
                }
                None => super::store::trust_list(data)?.add_file(&p)?,
            }
            println!("trusted {} ({})", p.name, p.root_key);
            println!(
                "compare the fingerprint with the one the newsroom gives you (`kolokol newsroom info` shows it)"
            );
        }
        TrustCommand::List { json } => {
            let all = super::store::trust_list(data)?.list()?;
            if json {
                super::json::print(&super::json::TrustList {
                    format: super::json::FORMAT,
                    publishers: all
                        .iter()
                        .map(|p| super::json::TrustedPublisher {
                            name: p.name.clone(),
                            root_key: super::json::key_hex(&p.root_key),
                            fingerprint: share::fingerprint(&p.root_key),
                            homepage: p.homepage.clone(),
                            demo: p.is_demo(),
                        })
                        .collect(),
                })?;
                return Ok(ExitCode::SUCCESS);
            }
            if all.is_empty() {
                println!("no trusted publishers (add one with `kolokol trust add FILE`)");
            }
            for p in all {
                let demo = if p.is_demo() {
                    "  [DEMO: never trust for real news]"
                } else {
                    ""
                };
                println!(
                    "{:<24} {}  {}{}",
                    p.name,
                    p.root_key,
                    p.homepage.as_deref().unwrap_or("-"),
                    demo
                );
            }
        }
        TrustCommand::Remove { name } => {
            match crate::node::control::ControlClient::for_data_dir(data) {
                // The running node writes the trust list and stops
                // carrying the publisher at once.
                Some(client) => client.untrust(&name)?,
                None => super::store::trust_list(data)?.remove(&name)?,
            }
            println!("removed {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
