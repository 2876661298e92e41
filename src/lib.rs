//! Kolokol: a censorship-resilient mirror for signed news stories.
//!
//! The layers, with dependencies running one way, down (drawn, with where
//! new things go, in `docs/architecture.md`):
//! - [`cli`]: the `kolokol` command line; thin, and the only place besides
//!   `main.rs` where `anyhow` is used.
//! - [`node`]: a running node put together ([`node::RunningNode`]): store,
//!   trust list, network, gateway, and the local control API other commands
//!   use while the node holds the store.
//! - [`gateway`]: the reader's web gateway, feeds and JSON API, read-only
//!   over the store; it sees the node through its own [`gateway::NodeView`].
//! - [`newsroom`]: a newsroom's keys and state on disk, and turning articles
//!   and feed items (through one draft builder) into signed bundles.
//! - [`net`]: the driver of the network: the swarm, owned by one actor task
//!   behind the cloneable [`net::Network`] handle, and a store thread that
//!   runs every store call of the network off the actor.
//! - [`sync`]: what the network decides, as an IO-less state machine
//!   ([`sync::State`]): fetches, catch-up, gossip verdicts, bans, the
//!   outbox; tested on virtual time ([`sync::sim`]).
//! - [`store`]: the sled store, blob files and archives.
//! - [`trust`]: the trust list of publisher files on disk.
//! - [`proto`]: formats and rules (ids, keys, signed objects, sequence
//!   ranges, the trust policy, the one owner of trust decisions).
//! - [`files`]: bounded reads, atomic writes and private files, for every
//!   layer that touches the disk.
//! - [`config`]: the node's settings file.
//!
//! [`proto`] and [`sync`] are pure: no tokio, libp2p, sled, file system or
//! clock; what depends on time takes it as an argument.

#![warn(missing_docs, clippy::unwrap_used)]

pub mod cli;
pub mod config;
pub mod files;
pub mod front;
pub mod gateway;
pub mod net;
pub mod newsroom;
pub mod node;
pub mod proto;
pub mod seal;
pub mod search;
pub mod store;
pub mod sync;
pub mod trust;
pub mod web;
