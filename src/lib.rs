//! Kolokol: a censorship-resilient mirror for signed news stories.
//!
//! Layers, with dependencies running one way, down:
//! - [`proto`]: formats and rules (ids, keys, signed objects, the trust
//!   policy). Pure: no clock, file or socket.
//! - [`files`]: bounded reads, atomic writes and private files.
//! - [`trust`]: the trust list of publisher files on disk.
//! - [`newsroom`]: a newsroom's keys and state on disk, and turning
//!   articles into signed bundles.
//! - [`store`]: the sled store and archives.
//! - [`net`]: the libp2p network actor and its handle.
//! - [`gateway`]: the reader's web gateway, feeds and JSON API over the store.
//! - [`node`]: a running node (network, store, control API, gateway).
//! - [`cli`]: the `kolokol` command line.

pub mod cli;
pub mod config;
pub mod files;
pub mod gateway;
pub mod net;
pub mod newsroom;
pub mod node;
pub mod proto;
pub mod store;
pub mod sync;
pub mod trust;
