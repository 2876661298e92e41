//! `kolokol newsroom`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::{display, now, parse_duration, parse_time};
use crate::newsroom::{InitOptions, Newsroom};

#[derive(Debug, Subcommand)]
pub(super) enum NewsroomCommand {
    /// Create a newsroom: root key, first signing key and certificate, public publisher file.
    Init {
        /// Short name: lower-case letters, digits and '-'.
        #[arg(long)]
        name: String,
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Name shown to readers.
        #[arg(long)]
        display_name: Option<String>,
        /// The newsroom's own site.
        #[arg(long)]
        homepage: Option<String>,
        /// Validity of the first signing key (e.g. 365d).
        #[arg(long, default_value = "365d")]
        valid_for: String,
        /// Limit the signing key to these languages (repeatable).
        #[arg(long = "lang")]
        languages: Vec<String>,
    },
    /// Make a new signing key with a fresh certificate (needs the root key).
    Rotate {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Validity of the new key (e.g. 365d).
        #[arg(long, default_value = "365d")]
        valid_for: String,
    },
    /// Revoke a signing key (needs the root key).
    Revoke {
        /// The signing key (ed25519:...) or its certificate serial.
        key: String,
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Refuse everything the key signed from this time on: `now`, a date or an RFC 3339 time.
        /// Set it to the earliest moment the key may have been compromised.
        #[arg(long, default_value = "now")]
        effective: String,
        /// Reason shown to readers.
        #[arg(long, default_value = "key withdrawn")]
        reason: String,
    },
    /// Ask the network which peers and mirrors hold a story (through the
    /// node running on the data directory).
    Report {
        /// The story: its id, or a prefix of its id or of one of its
        /// bundles' ids (at least 8 digits).
        story: String,
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// How long to wait for answers (at most 120s).
        #[arg(long, default_value = "10s")]
        wait: humantime::Duration,
    },
    /// Show the newsroom's keys and counts.
    Info {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
    },
}

pub(super) fn newsroom_dir(dir: Option<PathBuf>, data: &Path) -> PathBuf {
    dir.unwrap_or_else(|| data.join("newsroom"))
}

pub(super) fn run(cmd: NewsroomCommand, data: &Path) -> Result<ExitCode> {
    match cmd {
        NewsroomCommand::Init {
            name,
            dir,
            display_name,
            homepage,
            valid_for,
            languages,
        } => {
            let dir = newsroom_dir(dir, data);
            let opts = InitOptions {
                name,
                display_name,
                homepage,
                key_validity_secs: parse_duration(&valid_for).context("--valid-for")?,
                languages,
            };
            let n = Newsroom::init(&dir, &opts, now())?;
            let cert = n.current_key()?;
            println!("created newsroom {} in {}", n.config().name, display(&dir));
            println!("root key:     {}", n.root_public());
            println!(
                "signing key:  {} (valid {} to {})",
                cert.signing_key, cert.not_before, cert.not_after
            );
            println!(
                "publisher file for readers' trust lists: {}",
                display(&n.public_file_path())
            );
            println!(
                "keep {} offline and backed up; it is the newsroom's identity",
                display(&dir.join("root.key"))
            );
        }
        NewsroomCommand::Rotate { dir, valid_for } => {
            let dir = newsroom_dir(dir, data);
            let n = Newsroom::open(&dir)?;
            let cert = n.rotate(now(), parse_duration(&valid_for)?)?;
            println!(
                "new signing key {} (serial {}, valid {} to {})",
                cert.signing_key, cert.serial, cert.not_before, cert.not_after
            );
        }
        NewsroomCommand::Revoke {
            key,
            dir,
            effective,
            reason,
        } => {
            let dir = newsroom_dir(dir, data);
            let n = Newsroom::open(&dir)?;
            let effective = parse_time(&effective).context("--effective")?;
            let rev = n.revoke(&key, effective, &reason, now())?;
            println!("revoked {} from {}", rev.key, rev.effective_from);
            // A node running on this data directory announces it at once;
            // otherwise it travels with the next bundle published.
            if let Some(client) = crate::node::control::ControlClient::for_data_dir(data) {
                let removed = client.revoke(rev.bytes()).context(
                    "the revocation is saved in the newsroom folder, but announcing it through the running node failed",
                )?;
                println!(
                    "announced to the network through the running node ({removed} stored bundles removed)"
                );
            } else {
                println!(
                    "no node runs on this data directory: the revocation travels with the next story published"
                );
            }
            if n.current_key()?.signing_key == rev.key {
                println!(
                    "this was the current signing key: run `kolokol newsroom rotate` before signing again"
                );
            }
        }
        NewsroomCommand::Report { story, dir, wait } => {
            let dir = newsroom_dir(dir, data);
            let n = Newsroom::open(&dir)?;
            return report(&n, &story, wait.into(), data);
        }
        NewsroomCommand::Info { dir } => {
            let dir = newsroom_dir(dir, data);
            let n = Newsroom::open(&dir)?;
            println!("newsroom:   {}", n.config().name);
            println!("root key:   {}", n.root_public());
            let policy = n.policy()?;
            if let Some(p) = policy.publisher(&n.root_public()) {
                let mut certs: Vec<_> = p.certificates().collect();
                certs.sort_by_key(|c| c.serial);
                for c in certs {
                    let revoked = p
                        .revocations()
                        .find(|r| r.key == c.signing_key)
                        .map(|r| format!("  REVOKED from {}", r.effective_from))
                        .unwrap_or_default();
                    println!(
                        "key #{:<3} {}  valid {} to {}{}",
                        c.serial, c.signing_key, c.not_before, c.not_after, revoked
                    );
                }
            }
            println!("published:  {} bundles", n.published()?.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kolokol newsroom report`: who says they hold a story, and which
/// version.
fn report(n: &Newsroom, text: &str, wait: std::time::Duration, data: &Path) -> Result<ExitCode> {
    let published = n.published()?;
    let versions: Vec<_> = published
        .iter()
        .filter(|(_, id, m)| {
            text.len() >= 8
                && (m.story.to_string().starts_with(text) || id.to_string().starts_with(text))
        })
        .collect();
    let Some((_, _, first)) = versions.first() else {
        anyhow::bail!("{text:?} names no story this newsroom published (give at least 8 digits)");
    };
    let story = first.story;
    if versions.iter().any(|(_, _, m)| m.story != story) {
        anyhow::bail!("{text:?} matches several stories; give more digits");
    }
    let mut ours: Vec<_> = published
        .iter()
        .filter(|(_, _, m)| m.story == story)
        .map(|(_, id, m)| (m.version, *id))
        .collect();
    ours.sort();
    let Some(&(latest, latest_id)) = ours.last() else {
        anyhow::bail!("no version of the story is published");
    };
    let client = crate::node::control::ControlClient::for_data_dir(data).with_context(|| {
        format!(
            "no node runs on {}: start `kolokol node` to ask the network",
            super::display(data)
        )
    })?;
    let holdings = client.report(&n.root_public(), &story, wait)?;
    println!(
        "story {story}, latest version {latest} (bundle {})",
        latest_id.short()
    );
    let mut with_latest = 0;
    for h in &holdings {
        let kind = if h.mirror { "mirror" } else { "peer  " };
        let what = match (&h.error, h.bundles.is_empty()) {
            (Some(e), _) => format!("no answer: {e}"),
            (None, true) => "does not hold it".to_owned(),
            (None, false) => {
                let held: Vec<String> = h
                    .bundles
                    .iter()
                    .map(|b| {
                        ours.iter().find(|(_, id)| id == b).map_or_else(
                            || format!("unknown bundle {}", b.short()),
                            |(v, _)| format!("v{v}"),
                        )
                    })
                    .collect();
                if h.bundles.contains(&latest_id) {
                    with_latest += 1;
                }
                format!("holds {}", held.join(", "))
            }
        };
        println!("  {kind} {}  {what}", h.peer);
    }
    println!(
        "{with_latest} of {} peers asked hold the latest version",
        holdings.len()
    );
    Ok(ExitCode::SUCCESS)
}
