//! The `kolokol` command line.

mod bundle;
mod demo;
mod feed;
mod forget;
mod help;
mod json;
mod mirrors;
mod newsroom;
mod node;
mod peer;
mod report;
mod seal;
mod store;
mod trust;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::proto::Timestamp;

/// The heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Kolokol: carry signed news stories past censorship, peer to peer.
#[derive(Debug, Parser)]
#[command(name = "kolokol", version, about, long_about = None)]
pub struct Cli {
    /// Data directory (trust list, store, node identity); for `demo`, the
    /// folder of its newsroom and nodes.
    #[arg(long, global = true, env = "KOLOKOL_DATA_DIR", value_name = "DIR", help_heading = GLOBAL)]
    data_dir: Option<PathBuf>,
    /// More log output (-v, -vv); RUST_LOG or --log-level override.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    verbose: u8,
    /// Log level or filter (error, warn, info, debug, trace, or a RUST_LOG
    /// style filter such as "kolokol=debug,libp2p=info").
    #[arg(long, global = true, env = "KOLOKOL_LOG", value_name = "FILTER", help_heading = GLOBAL)]
    log_level: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, env = "KOLOKOL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, help_heading = GLOBAL)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo: a demo newsroom signs sample stories, and they are verified.
    #[command(after_long_help = help::DEMO)]
    Demo(demo::DemoArgs),
    /// Manage a newsroom's keys.
    #[command(subcommand)]
    Newsroom(newsroom::NewsroomCommand),
    /// Create bundles from articles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Verify bundle files against the trust list.
    #[command(after_long_help = help::VERIFY)]
    Verify(bundle::VerifyArgs),
    /// Show what a file holds, without trusting it.
    #[command(after_long_help = help::INSPECT)]
    Inspect(bundle::InspectArgs),
    /// Manage the trust list of publishers.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Remove a publisher's stories, media and traces from this machine, and stop trusting it.
    Forget(forget::ForgetArgs),
    /// Sign an article, or import a feed (--feed), and add it to the local store in one step.
    #[command(after_long_help = help::PUBLISH)]
    Publish(feed::PublishArgs),
    /// Look after the local store.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Write an archive of stored bundles, for carrying by hand.
    #[command(after_long_help = help::EXPORT)]
    Export(store::ExportArgs),
    /// Verify and store archives or bundle files.
    #[command(after_long_help = help::IMPORT)]
    Import(store::ImportArgs),
    /// Run a node: fetch, verify, store and pass on stories, until Ctrl-C or SIGTERM.
    #[command(after_long_help = help::NODE)]
    Node(node::NodeArgs),
    /// Give the running node a peer to dial, without a restart.
    #[command(subcommand)]
    Peer(peer::PeerCommand),
    /// Show the running node's peers, topics and, per publisher, what is held and missing,
    /// with advice when something is wrong.
    #[command(after_long_help = help::STATUS)]
    Status(node::StatusArgs),
    /// Encrypt the data directory (store, trust list, identity, settings) under a passphrase.
    #[command(after_long_help = help::SEAL)]
    Seal(seal::SealArgs),
    /// Turn a sealed data directory back into plain files.
    Unseal,
    /// Destroy the data directory: its key first (unreadable within a second), then the rest.
    #[command(after_long_help = help::WIPE)]
    Wipe(seal::WipeArgs),
    /// Lock the running node of a sealed data directory: it lets go of its store and key, and its
    /// gateway asks for the passphrase again.
    Lock,
}

/// The data directory: `--data-dir`, `$KOLOKOL_DATA_DIR`, or the platform's.
fn data_dir(cli_value: &Option<PathBuf>) -> Result<PathBuf> {
    match cli_value {
        Some(d) => Ok(d.clone()),
        None => Ok(dirs::data_dir()
            .context("no platform data directory is known here; pass --data-dir DIR")?
            .join("kolokol")),
    }
}

/// The current time.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

/// Parses `now`, a date (2026-05-01) or an RFC 3339 time.
pub(crate) fn parse_time(text: &str) -> Result<Timestamp> {
    if text == "now" {
        return Ok(now());
    }
    crate::newsroom::article::parse_date("time", text).map_err(anyhow::Error::from)
}

/// Parses a duration such as `365d`, `12h` or `90days`.
pub(crate) fn parse_duration(text: &str) -> Result<u64> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs())
        .with_context(|| format!("{text:?} is not a duration (try 365d or 12h)"))
}

/// Text from a file or a peer, made safe for a terminal: control
/// characters (which could move the cursor or rewrite earlier lines) are
/// shown escaped.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub(crate) fn display(path: &Path) -> String {
    path.display().to_string()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Lines for people to read.
    Text,
    /// One JSON object per line, for log collectors on servers.
    Json,
}

fn init_logging(verbose: u8, level: Option<&str>, format: LogFormat) -> Result<()> {
    let default = match verbose {
        // Kademlia warns at every start of a node that knows no peer yet
        // ("Failed to trigger bootstrap": the demo's nodes, a reader's
        // first start), which its user can do nothing about; its errors
        // still show.
        0 => "warn,libp2p_kad=error",
        1 => "info",
        _ => "debug",
    };
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::try_new(l)
            .with_context(|| format!("--log-level {l:?} is not a level or filter"))?,
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(report::stderr_colour())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// Runs the command line and returns the process exit status: 0 on
/// success, 1 on any failure, with the reason on standard error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.verbose, cli.log_level.as_deref(), cli.log_format) {
        eprintln!("error: {}", report::chain(&e));
        return ExitCode::FAILURE;
    }
    let json = cli.command.json();
    match run(cli) {
        Ok(code) => code,
        Err(e) if json => {
            // Scripts read one stream: the error object goes where the
            // output would have gone.
            if json::print(&json::error_report(&e)).is_err() {
                eprintln!("error: {}", report::chain(&e));
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", report::chain(&e));
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// Whether the command was asked for `--json` output.
    fn json(&self) -> bool {
        match self {
            Command::Status(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Inspect(a) => a.json,
            Command::Import(a) => a.json,
            Command::Trust(t) => t.json(),
            Command::Store(s) => s.json(),
            _ => false,
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let data = data_dir(&cli.data_dir)?;
    match cli.command {
        Command::Demo(args) => demo::run(args, cli.data_dir.as_deref()),
        Command::Newsroom(cmd) => newsroom::run(cmd, &data),
        Command::Bundle(cmd) => bundle::run_bundle(cmd, &data),
        Command::Verify(args) => bundle::verify(args, &data),
        Command::Inspect(args) => bundle::inspect(args),
        Command::Trust(cmd) => trust::run(cmd, &data),
        Command::Forget(args) => forget::forget(args, &data),
        Command::Publish(args) => feed::publish(args, &data),
        Command::Store(cmd) => store::run_store(cmd, &data),
        Command::Export(args) => store::export(args, &data),
        Command::Import(args) => store::import(args, &data),
        Command::Node(args) => node::run_node(args, &data),
        Command::Peer(cmd) => peer::run(cmd, &data),
        Command::Status(args) => node::status(args, &data),
        Command::Seal(args) => seal::seal(args, &data),
        Command::Unseal => seal::unseal(&data),
        Command::Wipe(args) => seal::wipe(args, &data),
        Command::Lock => seal::lock(&data),
    }
}
