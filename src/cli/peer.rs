//! `kolokol peer`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::display;
use crate::node::control::ControlClient;

#[derive(Debug, Subcommand)]
pub(super) enum PeerCommand {
    /// Have the running node dial a peer now (a mirror, a friend's node)
    /// and keep it in its address book, to be dialed again after a drop
    /// or a restart.
    #[command(after_long_help = super::help::PEER_ADD)]
    Add {
        /// The peer's address, ending in /p2p/<peer id>, e.g.
        /// /ip4/203.0.113.5/tcp/4001/p2p/12D3KooW...
        addr: String,
    },
}

pub(super) fn run(cmd: PeerCommand, data: &Path) -> Result<ExitCode> {
    match cmd {
        PeerCommand::Add { addr } => {
            let ma: libp2p::Multiaddr = addr
                .parse()
                .map_err(|e| anyhow::anyhow!("{addr:?} is not a multiaddress: {e}"))?;
            if !matches!(ma.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
                bail!("{addr:?} does not end in /p2p/<peer id>, which every dial address must");
            }
            let Some(client) = ControlClient::for_data_dir(data) else {
                bail!(
                    "no node is running on {}: start one with `kolokol node` (`kolokol node --bootstrap {addr}` dials this peer at start)",
                    display(data)
                );
            };
            client
                .peer(&addr)
                .with_context(|| format!("the node could not dial {addr}"))?;
            println!("the node is dialing {addr} and keeps it in its address book");
            println!("`kolokol status` shows when it is connected");
        }
    }
    Ok(ExitCode::SUCCESS)
}
