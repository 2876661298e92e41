//! `kolokol newsroom mirrors`: sign the newsroom's mirror list.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::newsroom::{newsroom_dir, open_newsroom};
use super::{display, now};
use crate::proto::mirrors::{MAX_MIRROR_LIST_VALIDITY_SECS, check_mirror_addr, check_mirror_url};

/// Seconds in a day.
pub(super) const DAY: u64 = 24 * 3600;

/// Checks mirrors' libp2p addresses one by one, each error naming the one
/// at fault and `flag`.
pub(super) fn check_addrs(flag: &str, addrs: &[String]) -> Result<()> {
    for addr in addrs {
        addr.parse::<libp2p::Multiaddr>()
            .map_err(|e| anyhow::anyhow!("{flag} {addr:?} is not a multiaddress: {e}"))?;
        check_mirror_addr(addr).with_context(|| format!("{flag} {addr:?}"))?;
    }
    Ok(())
}

/// Checks the addresses and URLs one by one, so an error names the one at
/// fault and the flag it came with, then signs and keeps the list.
pub(super) fn run(
    dir: Option<std::path::PathBuf>,
    libp2p: Vec<String>,
    https: Vec<String>,
    days: u64,
    data: &Path,
) -> Result<()> {
    if libp2p.is_empty() && https.is_empty() {
        bail!("name at least one mirror: --libp2p ADDR or --https URL");
    }
    let max_days = MAX_MIRROR_LIST_VALIDITY_SECS / DAY;
    if days == 0 || days > max_days {
        bail!("--days {days}: a mirror list is valid for 1 to {max_days} days");
    }
    check_addrs("--libp2p", &libp2p)?;
    for url in &https {
        check_mirror_url(url).with_context(|| format!("--https {url:?}"))?;
    }
    let n = open_newsroom(&newsroom_dir(dir, data))?;
    let signed = n.sign_mirror_list(libp2p, https, days * DAY, now())?;
    println!(
        "signed a mirror list of {} libp2p address(es) and {} web tree(s), valid until {}",
        signed.list.libp2p.len(),
        signed.list.https.len(),
        signed.list.expires_at
    );
    println!("kept in {}", display(&signed.path));
    println!(
        "publisher file with the list, for readers' trust lists: {}",
        display(&signed.public_file)
    );
    println!(
        "nodes that trust the newsroom take it from that file (at start or `kolokol trust add`) and pass it on"
    );
    Ok(())
}
