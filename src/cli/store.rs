//! `kolokol store`, `kolokol export`, `kolokol import`, `kolokol publish`.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::bundle::{CreateArgs, create};
use super::newsroom::newsroom_dir;
use super::{display, now, parse_time, printable};
use crate::newsroom::Newsroom;
use crate::node::control::ControlClient;
use crate::proto::{BundleId, PublicKey, TrustPolicy};
use crate::store::Store;
use crate::store::archive::{self, ExportFilter, ImportReport, Summary, ranges_text};
use crate::trust::{MAX_PUBLISHER_FILE, TrustList};

#[derive(Debug, Subcommand)]
pub(super) enum StoreCommand {
    /// Rehash every manifest and blob and report damage.
    #[command(after_long_help = super::help::STORE_CHECK)]
    Check {
        /// Remove damaged entries (peers can supply them again).
        #[arg(long)]
        repair: bool,
    },
    /// Show what the store holds, per publisher.
    #[command(after_long_help = super::help::STORE_STATS)]
    Stats {
        /// Print one JSON object (docs/cli-json.md) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write what the store holds, for `kolokol export --have` on another machine.
    Summary {
        /// The summary file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Keep a story whatever the quota (give any bundle id of the story).
    Pin {
        /// A bundle id of the story.
        bundle: String,
    },
    /// Let eviction consider a pinned story again.
    Unpin {
        /// A bundle id of the story.
        bundle: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// Only this publisher (name in the trust list, or root key); repeatable.
    #[arg(long = "publisher")]
    publishers: Vec<String>,
    /// Only bundles signed at or after this date or time.
    #[arg(long)]
    since: Option<String>,
    /// Leave out what the receiving machine has (a file from `kolokol store summary`).
    #[arg(long)]
    have: Option<PathBuf>,
    /// The archive to write.
    #[arg(long, required_unless_present = "web", conflicts_with = "web")]
    out: Option<PathBuf>,
    /// Write (or bring up to date) a web tree in this folder instead: files
    /// any static web host, CDN or object store can serve, which readers'
    /// nodes read over HTTPS (see docs/censorship.md).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["publishers", "since", "have"])]
    web: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// Archives or bundle files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print `stored ID` for each bundle once it is durable.
    #[arg(long, hide = true, conflicts_with = "json")]
    print_stored: bool,
    /// Print one JSON object (docs/cli-json.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

impl StoreCommand {
    /// Whether `--json` output was asked for.
    pub(super) fn json(&self) -> bool {
        matches!(self, StoreCommand::Stats { json: true })
    }
}

/// Opens the data directory's store.
pub(crate) fn open_store(data: &Path) -> Result<Store> {
    let dir = super::seal::open_dir(data)?;
    let config = dir.config(None)?;
    crate::files::create_private_dir_all(data).with_context(|| display(data))?;
    let store = dir.open_store(config.store)?;
    crate::files::tighten_data_dir(data, &dir.store_path().join("index"));
    Ok(store)
}

/// The data directory's trust list.
pub(crate) fn trust_list(data: &Path) -> Result<TrustList> {
    Ok(super::seal::open_dir(data)?.trust()?)
}

/// The trust list's policy, taught what the store knows.
pub(super) fn policy(data: &Path, store: &Store) -> Result<TrustPolicy> {
    let mut policy = trust_list(data)?.policy()?;
    store.load_trust(&mut policy, now())?;
    Ok(policy)
}

fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_message(what.to_owned());
    bar
}

fn resolve_publisher(data: &Path, text: &str) -> Result<PublicKey> {
    if let Ok(k) = text.parse::<PublicKey>() {
        return Ok(k);
    }
    trust_list(data)?
        .list()?
        .into_iter()
        .find(|p| p.name == text)
        .map(|p| p.root_key)
        .with_context(|| format!("no trusted publisher is named {text:?} (or give its root key)"))
}

pub(super) fn run_store(cmd: StoreCommand, data: &Path) -> Result<ExitCode> {
    let store = open_store(data)?;
    match cmd {
        StoreCommand::Check { repair } => {
            let report = store.check(repair)?;
            println!(
                "checked {} manifests and {} blobs",
                report.manifests, report.blobs
            );
            for p in &report.problems {
                println!("problem: {p}");
            }
            if repair {
                for id in &report.removed_bundles {
                    println!("removed {id} (it will be fetched again)");
                }
            }
            if report.problems.is_empty() {
                println!("no problems found");
            } else if !repair {
                println!("run `kolokol store check --repair` to remove damaged entries");
                return Ok(ExitCode::FAILURE);
            }
        }
        StoreCommand::Stats { json } => {
            let t = store.totals()?;
            let path = store
                .path()
                .map(Path::to_owned)
                .unwrap_or_else(|| data.join("store"));
            if json {
                super::json::print(&stats_json(&store, data, &path, t)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let sealed = if store.is_sealed() { " (sealed)" } else { "" };
            println!("store:     {}{sealed}", display(&path));
            println!("bundles:   {}", t.bundles);
            println!("blobs:     {}", t.blobs);
            println!("payload:   {} bytes", t.payload_bytes);
            println!("on disk:   {} bytes", t.disk_bytes);
            if let Some(q) = store.config().quota_bytes {
                println!("quota:     {q} bytes");
            }
            let names: std::collections::HashMap<_, _> = trust_list(data)?
                .list()?
                .into_iter()
                .map(|p| (p.root_key, p.name))
                .collect();
            for p in store.publishers()? {
                let name = names.get(&p).map_or("(not trusted)", |n| n.as_str());
                println!("publisher {name} {}", p.short());
                println!("  held:    {}", ranges_text(&store.held_ranges(&p)?));
                println!("  missing: {}", ranges_text(&store.missing(&p)?));
                if let Some((_, h)) = store.head(&p)? {
                    let age = now().since(h.issued_at);
                    let expired = if h.is_expired(now()) {
                        "  EXPIRED: the feed may be frozen"
                    } else {
                        ""
                    };
                    println!(
                        "  head:    sequence {} issued {} ({} ago){expired}",
                        h.sequence,
                        h.issued_at,
                        humantime::format_duration(std::time::Duration::from_secs(age))
                    );
                }
            }
        }
        StoreCommand::Summary { out } => {
            let summary = Summary::of(&store)?;
            crate::files::write_atomic(&out, summary.to_toml().as_bytes())
                .with_context(|| display(&out))?;
            println!(
                "wrote {} ({} publishers)",
                display(&out),
                summary.publishers.len()
            );
        }
        StoreCommand::Pin { bundle } | StoreCommand::Unpin { bundle }
            if bundle.parse::<BundleId>().is_err() =>
        {
            bail!("{bundle:?} is not a bundle id");
        }
        StoreCommand::Pin { bundle } => {
            let m = store
                .manifest(&bundle.parse()?)?
                .with_context(|| format!("bundle {bundle} is not in the store"))?;
            store.pin(&m.manifest.publisher, &m.manifest.story)?;
            println!(
                "pinned story {} ({})",
                m.manifest.story,
                printable(&m.manifest.metadata.title)
            );
        }
        StoreCommand::Unpin { bundle } => {
            let m = store
                .manifest(&bundle.parse()?)?
                .with_context(|| format!("bundle {bundle} is not in the store"))?;
            store.unpin(&m.manifest.publisher, &m.manifest.story)?;
            println!("unpinned story {}", m.manifest.story);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `store stats --json`.
fn stats_json(
    store: &Store,
    data: &Path,
    path: &Path,
    t: crate::store::Totals,
) -> Result<super::json::StoreStats> {
    use super::json;
    let names: std::collections::HashMap<_, _> = trust_list(data)?
        .list()?
        .into_iter()
        .map(|p| (p.root_key, p.name))
        .collect();
    let mut publishers = Vec::new();
    for p in store.publishers()? {
        let head = store.head(&p)?.map(|(_, h)| json::HeadInfo {
            sequence: h.sequence,
            issued_at: json::secs(h.issued_at),
            expired: h.is_expired(now()),
        });
        publishers.push(json::StorePublisher {
            name: names.get(&p).cloned(),
            root_key: json::key_hex(&p),
            held: json::ranges(&store.held_ranges(&p)?),
            missing: json::ranges(&store.missing(&p)?),
            head,
        });
    }
    Ok(json::StoreStats {
        format: json::FORMAT,
        path: display(path),
        sealed: store.is_sealed(),
        bundles: t.bundles,
        blobs: t.blobs,
        payload_bytes: t.payload_bytes,
        disk_bytes: t.disk_bytes,
        quota_bytes: store.config().quota_bytes,
        publishers,
    })
}

pub(super) fn export(args: ExportArgs, data: &Path) -> Result<ExitCode> {
    let store = open_store(data)?;
    let path = match (&args.web, &args.out) {
        (Some(dir), _) => {
            if dir.exists() && !dir.is_dir() {
                anyhow::bail!("--web {}: not a folder", display(dir));
            }
            let r = crate::web::export_web(&store, dir)
                .with_context(|| format!("--web {}", display(dir)))?;
            println!(
                "web tree {}: {} new segments ({} in all), {} large blobs, {} bytes written; log position {}",
                display(dir),
                r.segments,
                r.total_segments,
                r.blobs,
                r.bytes,
                r.end
            );
            return Ok(ExitCode::SUCCESS);
        }
        (None, Some(out)) => out.clone(),
        (None, None) => anyhow::bail!("give --out FILE or --web DIR"),
    };
    let mut filter = ExportFilter::default();
    for p in &args.publishers {
        filter.publishers.push(resolve_publisher(data, p)?);
    }
    if let Some(since) = &args.since {
        filter.since = Some(parse_time(since).context("--since")?);
    }
    if let Some(have) = &args.have {
        filter.have = Some(Summary::load(have).with_context(|| display(have))?);
    }
    let bar = progress(None, "exporting");
    let result = crate::files::write_atomic_with(&path, |file| -> Result<_> {
        let mut out = std::io::BufWriter::new(file);
        let report = archive::export(&store, &filter, &mut out, &mut |n| bar.set_position(n))?;
        out.flush().with_context(|| display(&path))?;
        Ok(report)
    });
    bar.finish_and_clear();
    let report = result.with_context(|| display(&path))?;
    println!(
        "wrote {}: {} bundles, {} bytes{}",
        display(&path),
        report.bundles,
        report.bytes,
        if report.skipped > 0 {
            format!(" ({} the receiver has were left out)", report.skipped)
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

struct CountingReader<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

pub(super) fn print_report(
    out: &mut dyn std::io::Write,
    name: &str,
    report: &ImportReport,
) -> bool {
    let _ = writeln!(
        out,
        "{name}: {} new, {} duplicate, {} rejected{}",
        report.new,
        report.duplicate,
        report.refused.max(report.rejected.len() as u64),
        if report.purged > 0 {
            format!(", {} removed by a revocation", report.purged)
        } else {
            String::new()
        }
    );
    for r in &report.rejected {
        let _ = writeln!(out, "  rejected {}: {}", r.what, printable(&r.reason));
    }
    let untold = report.refused.saturating_sub(report.rejected.len() as u64);
    if untold > 0 {
        let kinds: Vec<String> = report
            .refused_by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let _ = writeln!(
            out,
            "  and {untold} more (in all: {})",
            printable(&kinds.join(", "))
        );
    }
    if let Some(e) = &report.file_error {
        let _ = writeln!(
            out,
            "  the file is damaged: {e}; bundles before the damage were kept"
        );
    }
    report.rejected.is_empty() && report.file_error.is_none()
}

pub(super) fn import(args: ImportArgs, data: &Path) -> Result<ExitCode> {
    if let Some(client) = crate::node::control::ControlClient::for_data_dir(data) {
        // The running node holds the store: it imports, and announces.
        let mut all_ok = true;
        let mut files = Vec::new();
        for path in &args.files {
            let abs = fs::canonicalize(path).with_context(|| display(path))?;
            let report = client.import(&abs).with_context(|| display(path))?;
            if args.json {
                files.push(super::json::ImportedFile::of(display(path), &report));
            } else {
                all_ok &= print_report(&mut std::io::stdout(), &display(path), &report);
            }
        }
        if args.json {
            return import_json(true, files);
        }
        return Ok(if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let store = open_store(data)?;
    let mut policy = policy(data, &store)?;
    let mut all_ok = true;
    let mut files = Vec::new();
    for path in &args.files {
        let file = fs::File::open(path).with_context(|| display(path))?;
        let len = file.metadata().map(|m| m.len()).ok();
        let bar = progress(len, "importing");
        let reader = CountingReader {
            inner: std::io::BufReader::with_capacity(1 << 20, file),
            bar: bar.clone(),
        };
        let print = args.print_stored;
        let mut on_stored = |id: &BundleId| {
            if print {
                println!("stored {id}");
            }
        };
        let report = archive::import(&store, &mut policy, reader, now(), &mut on_stored)
            .with_context(|| display(path))?;
        bar.finish_and_clear();
        if args.json {
            files.push(super::json::ImportedFile::of(display(path), &report));
        } else {
            all_ok &= print_report(&mut std::io::stdout(), &display(path), &report);
        }
    }
    drop(policy);
    store.close()?;
    if args.json {
        return import_json(false, files);
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints `import --json`; fails as the text output does when a file
/// had something refused.
fn import_json(by_node: bool, files: Vec<super::json::ImportedFile>) -> Result<ExitCode> {
    let ok = files.iter().all(super::json::ImportedFile::ok);
    super::json::print(&super::json::Import {
        format: super::json::FORMAT,
        ok,
        by_node,
        files,
    })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Has the running node trust `newsroom`, as a local publish would. The
/// node's refusal because the newsroom's name or key is already in its
/// trust list (under this name, or another) is no error here: publishing
/// then says what is wrong, if anything is.
pub(super) fn trust_at_node(client: &ControlClient, newsroom: &Newsroom) -> Result<()> {
    let path = newsroom.public_file_path();
    let text = crate::files::read_bounded_text(&path, MAX_PUBLISHER_FILE)?;
    match client.trust(&text) {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(e).context("adding the newsroom to the node's trust list"),
    }
}

pub(super) fn publish(args: CreateArgs, data: &Path) -> Result<ExitCode> {
    let newsroom = super::newsroom::open_newsroom(&newsroom_dir(args.newsroom.clone(), data))?;
    if let Some(client) = ControlClient::for_data_dir(data) {
        // The running node stores and announces it at once.
        trust_at_node(&client, &newsroom)?;
        let published = create(&newsroom, args)?;
        let id = client.publish(&published.bytes)?;
        eprintln!("stored and announced by the running node");
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(data)?;
    // A newsroom's own node trusts the newsroom.
    let trust = trust_list(data)?;
    if !trust.policy()?.is_trusted(&newsroom.root_public()) {
        trust.add(&newsroom.public_file_path())?;
        eprintln!("added {} to this node's trust list", newsroom.config().name);
    }
    let published = create(&newsroom, args)?;
    let mut policy = policy(data, &store)?;
    let report = archive::import(
        &store,
        &mut policy,
        published.bytes.as_slice(),
        now(),
        &mut |_| {},
    )?;
    if !print_report(&mut std::io::stderr(), "publish", &report)
        || report.new + report.duplicate == 0
    {
        bail!(
            "the new bundle was signed (kept in {}) but not stored",
            display(&published.path)
        );
    }
    eprintln!("stored in {}", display(&data.join("store")));
    println!("{}", published.bundle.id());
    Ok(ExitCode::SUCCESS)
}
