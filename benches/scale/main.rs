//! `cargo bench --bench scale`: how each cost grows with size, as curves
//! rather than points.
//!
//! - **The store** grown to 10^4, 10^5 and 10^6 stories of 4 KiB on disk:
//!   ingest rate, bytes on disk per story, memory, `store check`, a fresh
//!   node's catch-up and the reconciliation of two nodes in sync, at each.
//! - **Real nodes** on loopback in this process, 20, 100 and 300: 100
//!   stories published one after another, publish-to-stored p50 and p99,
//!   delivery, duplicates and bytes per node.
//! - **The simulation** of the IO-less core in virtual time at 1,000 and
//!   10,000 nodes.
//!
//! Each measure is printed as a table across the sizes with how it grows
//! (the exponent of a power-law fit), and drawn as an SVG in
//! `target/bench/`. `cargo bench --bench scale -- store` (or `network`,
//! `sim`) runs one part. Without `--bench` (`cargo test --bench scale`)
//! the sizes are small, to check that it runs.

// A bench is its own crate: its modules' items are public to each other.
#![allow(unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;
mod network;
mod plot;
mod store;

use std::path::PathBuf;

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let part = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut curves = plot::Curves::default();
    let started = std::time::Instant::now();
    if part("store") {
        let (sizes, window): (&[u64], u64) = if quick {
            (&[1_000, 4_000], 500)
        } else {
            (&[10_000, 100_000, 1_000_000], 10_000)
        };
        store::run(&rt, sizes, window, &mut curves);
    }
    // Only when asked for by name: the store part measures ingest too.
    if filter.as_deref() == Some("ingest") {
        let (sizes, window): (&[u64], u64) = if quick {
            (&[1_000, 2_000, 4_000], 500)
        } else {
            (&[10_000, 30_000, 100_000, 300_000, 1_000_000], 10_000)
        };
        store::ingest_curve(sizes, window, &mut curves);
    }
    if part("network") {
        let (sizes, stories): (&[usize], u64) = if quick {
            (&[5, 10], 5)
        } else {
            (&[20, 100, 300], 100)
        };
        network::real(&rt, sizes, stories, &mut curves);
    }
    if part("sim") {
        let (sizes, stories): (&[usize], u64) = if quick {
            (&[100, 200], 5)
        } else {
            (&[1_000, 10_000], 10)
        };
        network::sim(sizes, stories, &mut curves);
    }
    // Plots go beside the build's own output: target/bench/.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), |p| p.to_path_buf())
        .join("bench");
    curves.finish(&dir);
    let (_, peak) = store::memory();
    println!(
        "\nscale bench: {:.0} s in all, peak RSS {peak:.0} MiB",
        started.elapsed().as_secs_f64()
    );
}
