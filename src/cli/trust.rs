//! `kolokol trust`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(super) enum TrustCommand {
    /// Trust the publisher described by a publisher file (from `keys/` or a newsroom).
    Add {
        /// The publisher file (TOML).
        file: PathBuf,
    },
    /// List trusted publishers.
    List,
    /// Stop trusting a publisher.
    Remove {
        /// The publisher's name.
        name: String,
    },
}

pub(super) fn run(cmd: TrustCommand, data: &Path) -> Result<ExitCode> {
    let list = super::store::trust_list(data)?;
    match cmd {
        TrustCommand::Add { file } => {
            let p = crate::trust::PublisherFile::load(&file)?;
            match crate::node::control::ControlClient::for_data_dir(data) {
                // The running node writes the trust list and subscribes.
                Some(client) => client.trust(&crate::files::read_bounded_text(
                    &file,
                    crate::trust::MAX_PUBLISHER_FILE,
                )?)?,
                None => list.add_file(&p)?,
            }
            if p.is_demo() {
                eprintln!(
                    "warning: {} is the DEMO newsroom; its secret key is public, so anyone can sign as it. Never trust it for real news.",
                    p.name
                );
            }
            println!("trusted {} ({})", p.name, p.root_key);
        }
        TrustCommand::List => {
            let all = list.list()?;
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
                None => list.remove(&name)?,
            }
            println!("removed {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
