//! `kolokol forget`: one outlet's stories, media and traces out of the
//! data directory, for a reader who may be punished for holding them.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use super::{display, printable};
use crate::proto::PublicKey;
use crate::store::StoreError;

#[derive(Debug, Args)]
pub(super) struct ForgetArgs {
    /// The publisher: its name in the trust list, or its root key
    /// (`ed25519:` and 64 hex digits, or the hex digits alone).
    publisher: String,
    /// Forget without asking for confirmation (needed when standard input
    /// is not a terminal).
    #[arg(long)]
    yes: bool,
}

/// A root key given as text, with or without its `ed25519:` prefix.
fn parse_key(text: &str) -> Option<PublicKey> {
    let text = text.trim();
    text.parse()
        .or_else(|_| format!("{}{text}", crate::proto::PUBLIC_KEY_PREFIX).parse())
        .ok()
}

pub(super) fn forget(args: ForgetArgs, data: &Path) -> Result<ExitCode> {
    let dir = super::seal::open_dir(data)?;
    let list = dir.trust()?;
    let key = parse_key(&args.publisher);
    let trusted = list
        .list()?
        .into_iter()
        .find(|p| p.name == args.publisher || Some(p.root_key) == key);
    // A key the trust list no longer names may still have stories in the
    // store (trusted once, or a forget cut short): those go too.
    let (name, root) = match (trusted, key) {
        (Some(p), _) => (Some(p.name), p.root_key),
        (None, Some(k)) => (None, k),
        (None, None) => bail!(
            "no trusted publisher is named {:?} (give its name from `kolokol trust list`, or its root key)",
            printable(&args.publisher)
        ),
    };
    let config = dir.config(None)?;
    let store = match dir.open_store(config.store) {
        Ok(s) => s,
        Err(StoreError::Locked(_)) => bail!(
            "a kolokol node is running on {}: stop it first, then forget (the store must be closed to be cleaned)",
            display(data)
        ),
        Err(e) => return Err(e.into()),
    };
    let shown = name.as_deref().unwrap_or("the publisher");
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("forgetting cannot be undone; not asking without a terminal: pass --yes");
        }
        let held = store.held_bundles(&root)?.len();
        eprint!(
            "forget {shown} ({root}): remove its {held} stored bundles and every trace of it, and stop trusting it? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("nothing forgotten");
        }
    }
    let gone = store.forget_publisher(&root)?;
    store.flush()?;
    // sled keeps removed values in its files until it reuses the space:
    // the store is copied into fresh files, and the old ones removed.
    crate::seal::convert::rewrite_store(&dir, store)?;
    // Only once the store is clean: a forget cut short before this still
    // finds the publisher by its name the next time.
    if let Some(name) = &name {
        list.remove(name)?;
    }
    println!(
        "forgot {shown} ({root}): {} bundles, {} blobs, {} bytes removed{}",
        gone.bundles,
        gone.blobs,
        gone.bytes,
        if name.is_some() {
            "; no longer trusted"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
