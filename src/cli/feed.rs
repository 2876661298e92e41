//! `kolokol publish`: one article (see `store::publish`), or a newsroom's
//! whole feed with `--feed`, once or every `--watch` interval.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Arg, ArgGroup, ArgMatches, Args, FromArgMatches};

use super::bundle::CreateArgs;
use super::newsroom::newsroom_dir;
use super::store::{open_store, policy, print_report, trust_at_node};
use super::{display, now, printable};
use crate::newsroom::feed::{self, Change, FeedSource, ImportOptions, LatestVersions, Prepared};
use crate::newsroom::fetch::Fetcher;
use crate::newsroom::{Newsroom, Published};
use crate::node::control::ControlClient;
use crate::store::archive;

/// The shortest `--watch` interval: a feed is the newsroom's own server's
/// load, and news does not change by the second.
const MIN_WATCH: Duration = Duration::from_secs(10);

/// `kolokol publish`'s arguments: an article with [`CreateArgs`], or
/// `--feed` (with `--watch`, `--newsroom` and `--lang` only).
///
/// Written by hand rather than derived because `--feed` makes the article
/// argument of the shared [`CreateArgs`] optional, which `bundle create`
/// must keep required.
#[derive(Debug)]
pub(crate) struct PublishArgs {
    /// The feed's URL or file.
    feed: Option<String>,
    /// Poll every this often.
    watch: Option<Duration>,
    /// Newsroom folder, for `--feed`.
    newsroom: Option<PathBuf>,
    /// Language for items whose feed names none.
    lang: Option<String>,
    /// The article's arguments, when there is no `--feed`.
    article: Option<CreateArgs>,
}

/// `CreateArgs` options that describe one article and so make no sense
/// with `--feed`.
const ARTICLE_ONLY: [&str; 13] = [
    "article",
    "title",
    "authors",
    "section",
    "url",
    "summary",
    "date",
    "images",
    "story",
    "correction_of",
    "retract",
    "out",
    "force",
];

impl Args for PublishArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        CreateArgs::augment_args(cmd)
            .mut_arg("article", |a| a.required(false))
            .arg(
                Arg::new("feed")
                    .long("feed")
                    .value_name("FILE_OR_URL")
                    .conflicts_with_all(ARTICLE_ONLY)
                    .help("Import an RSS 2.0, Atom or JSON Feed instead: each item becomes a story (new, or a new version when it changed)"),
            )
            .arg(
                Arg::new("watch")
                    .long("watch")
                    .value_name("INTERVAL")
                    .requires("feed")
                    .value_parser(parse_interval)
                    .help("With --feed: import again every INTERVAL (e.g. 15m) until Ctrl-C"),
            )
            .group(
                ArgGroup::new("source")
                    .args(["article", "feed"])
                    .required(true)
                    .multiple(false),
            )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for PublishArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let feed = m.get_one::<String>("feed").cloned();
        let article = if feed.is_some() {
            None
        } else {
            Some(CreateArgs::from_arg_matches(m)?)
        };
        Ok(Self {
            feed,
            watch: m.get_one::<Duration>("watch").copied(),
            newsroom: m.get_one::<PathBuf>("newsroom").cloned(),
            lang: m.get_one::<String>("lang").cloned(),
            article,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not an interval (try 15m or 1h): {e}"))?;
    if d < MIN_WATCH {
        return Err(format!(
            "{text:?} is too short: poll at most every {}",
            humantime::format_duration(MIN_WATCH)
        ));
    }
    Ok(d)
}

pub(super) fn publish(args: PublishArgs, data: &Path) -> Result<ExitCode> {
    let Some(feed) = args.feed else {
        let article = args.article.context("an article or --feed is needed")?;
        return super::store::publish(article, data);
    };
    let source = FeedSource::parse(&feed)?;
    let job = FeedJob {
        newsroom: newsroom_dir(args.newsroom, data),
        data: data.to_owned(),
        source,
        lang: args.lang,
        watching: args.watch.is_some(),
    };
    match args.watch {
        None => {
            let round = job.round()?;
            if round.failed > 0 {
                bail!(
                    "{} of the feed's items could not be imported; run again to retry them",
                    round.failed
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(interval) => watch(job, interval),
    }
}

/// Everything one import round needs; owned, so a round can run on a
/// blocking thread while the watch loop waits for Ctrl-C.
#[derive(Debug, Clone)]
struct FeedJob {
    newsroom: PathBuf,
    data: PathBuf,
    source: FeedSource,
    lang: Option<String>,
    /// Under `--watch`: print only what changed, each line with the time,
    /// since every round would otherwise list the whole feed again.
    watching: bool,
}

/// What one round did.
#[derive(Debug, Default)]
struct Round {
    new: usize,
    updated: usize,
    unchanged: usize,
    skipped: usize,
    failed: usize,
}

/// Where signed bundles go: the running node, or the local store.
enum Target {
    Node(ControlClient),
    // Boxed: a policy is large, and there is one target per round.
    Store(Box<(crate::store::Store, crate::proto::TrustPolicy)>),
}

impl Target {
    /// The running node if there is one, else the data directory's store;
    /// either way the newsroom is trusted first, as `kolokol publish` does.
    fn open(newsroom: &Newsroom, data: &Path) -> Result<Self> {
        if let Some(client) = ControlClient::for_data_dir(data) {
            trust_at_node(&client, newsroom)?;
            return Ok(Target::Node(client));
        }
        let store = open_store(data)?;
        let trust = super::store::trust_list(data)?;
        if !trust.policy()?.is_trusted(&newsroom.root_public()) {
            trust.add(&newsroom.public_file_path())?;
            eprintln!("added {} to this node's trust list", newsroom.config().name);
        }
        let policy = policy(data, &store)?;
        Ok(Target::Store(Box::new((store, policy))))
    }

    fn deliver(&mut self, published: &Published) -> Result<()> {
        match self {
            Target::Node(client) => {
                client.publish(&published.bytes).with_context(|| {
                    format!(
                        "the node did not take {} (it is kept in {})",
                        published.bundle.id(),
                        display(&published.path)
                    )
                })?;
            }
            Target::Store(local) => {
                let (store, policy) = &mut **local;
                let report = archive::import(
                    store,
                    policy,
                    published.bytes.as_slice(),
                    now(),
                    &mut |_| {},
                )?;
                let mut msg = Vec::new();
                if !print_report(&mut msg, "store", &report) || report.new + report.duplicate == 0 {
                    bail!(
                        "the new bundle was signed (kept in {}) but not stored: {}",
                        display(&published.path),
                        String::from_utf8_lossy(&msg).trim()
                    );
                }
            }
        }
        Ok(())
    }
}

impl FeedJob {
    /// Prints one item's line: with the time when watching; items that
    /// stay as they were only when not watching.
    fn line(&self, changed: bool, text: std::fmt::Arguments<'_>) {
        if self.watching {
            if changed {
                println!("{} {text}", now());
            }
        } else {
            println!("{text}");
        }
    }

    /// Reads the whole feed, then item by item prepares, compares, and
    /// signs and stores the new and changed ones, printing one line each.
    fn round(&self) -> Result<Round> {
        let newsroom = Newsroom::open(&self.newsroom)?;
        // A feed from elsewhere may not make us fetch from this machine or
        // its network; a feed on one (or a file) may.
        let local = match &self.source {
            feed::FeedSource::Url(u) => crate::newsroom::fetch::is_local(u),
            feed::FeedSource::File(_) => true,
        };
        let fetcher = Fetcher::default().allow_local(local);
        // The whole feed is read and parsed before anything is signed: a
        // broken feed publishes nothing.
        let loaded = feed::load(&self.source, &fetcher)?;
        let mut opts =
            ImportOptions::for_newsroom(loaded.url.as_ref(), newsroom.config().homepage.as_deref());
        opts.default_language = self.lang.clone();
        let mut round = Round::default();
        let latest = LatestVersions::load(&newsroom)?;
        let mut target = None;
        // One item at a time: fetched, compared, and signed whole before
        // the next is fetched.
        for prepared in feed::prepare(&loaded, &newsroom.root_public(), &fetcher, &opts) {
            let item = match prepared {
                Prepared::Ready(item) => *item,
                Prepared::Skipped {
                    item,
                    reason,
                    failed,
                } => {
                    // A failure is news each round; an item skipped for
                    // what it is would be skipped again every round.
                    self.line(
                        failed,
                        format_args!("skipped    {}: {}", printable(&item), printable(&reason)),
                    );
                    if failed {
                        round.failed += 1;
                    } else {
                        round.skipped += 1;
                    }
                    continue;
                }
            };
            let title = printable(&item.draft.title);
            let change = latest.change(&item);
            match change {
                Change::Unchanged { version } => {
                    round.unchanged += 1;
                    self.line(
                        false,
                        format_args!("unchanged  {} version {version}: {title}", item.story),
                    );
                }
                Change::Retracted => {
                    round.skipped += 1;
                    self.line(
                        false,
                        format_args!(
                            "skipped    {} {title}: the newsroom retracted this story",
                            item.story
                        ),
                    );
                }
                Change::New | Change::Updated { .. } => {
                    if target.is_none() {
                        target = Some(Target::open(&newsroom, &self.data)?);
                    }
                    let Some(target) = target.as_mut() else {
                        continue;
                    };
                    let published = newsroom
                        .publish(item.draft, now())
                        .with_context(|| format!("signing {}", printable(&item.key)))?;
                    target.deliver(&published)?;
                    let m = published.bundle.manifest();
                    let word = if change == Change::New {
                        round.new += 1;
                        "new"
                    } else {
                        round.updated += 1;
                        "updated"
                    };
                    self.line(
                        true,
                        format_args!(
                            "{word:<10} {} version {}: {title} ({})",
                            m.story,
                            m.version,
                            published.bundle.id()
                        ),
                    );
                }
            }
        }
        let when = if self.watching {
            format!("{} ", now())
        } else {
            String::new()
        };
        eprintln!(
            "{when}{}: {} new, {} updated, {} unchanged, {} skipped, {} failed",
            printable(&loaded.source),
            round.new,
            round.updated,
            round.unchanged,
            round.skipped,
            round.failed
        );
        Ok(round)
    }
}

/// Runs a round every `interval` until Ctrl-C or SIGTERM. A failed round
/// is reported and the next one tries again; a signal during a round lets
/// it finish, so no story is left half-published.
fn watch(job: FeedJob, interval: Duration) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the timer")?;
    rt.block_on(async move {
        let shutdown = crate::node::shutdown_signal();
        tokio::pin!(shutdown);
        let mut stopping = false;
        loop {
            let round_job = job.clone();
            let mut handle = tokio::task::spawn_blocking(move || round_job.round());
            let result = tokio::select! {
                r = &mut handle => r,
                () = &mut shutdown => {
                    stopping = true;
                    eprintln!("stopping after this round");
                    handle.await
                }
            };
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("error: {}", super::report::chain(&e)),
                Err(e) => eprintln!("error: the import round stopped: {e}"),
            }
            if stopping {
                break;
            }
            eprintln!("next import in {}", humantime::format_duration(interval));
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
