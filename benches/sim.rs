//! `cargo bench --bench sim`: the network's decisions (`kolokol::sync`)
//! simulated on virtual time, no runtime and no sockets: hundreds of nodes,
//! a tenth of them liars, a newsroom publishing stories one after another
//! and a tenth of the honest nodes joining only afterwards (so they must
//! catch up). Prints, per size: honest nodes complete, bans of liars and of
//! honest nodes, messages and bytes, the virtual time until every honest
//! node held every story, and the wall time of the whole run.

use std::time::Instant;

use kolokol::sync::sim::{SimConfig, run};

fn main() {
    println!(
        "{:>6} {:>6} {:>8} {:>10} {:>10} {:>9} {:>10} {:>12} {:>10} {:>9}",
        "nodes",
        "liars",
        "stories",
        "complete",
        "liar bans",
        "honest b.",
        "messages",
        "MB",
        "virtual s",
        "wall s"
    );
    for (nodes, stories) in [(200, 20), (500, 20), (1000, 10)] {
        let config = SimConfig {
            nodes,
            liars: nodes / 10,
            late: nodes / 10,
            stories,
            ..SimConfig::default()
        };
        let started = Instant::now();
        let Some(r) = run(config.clone()) else {
            eprintln!("the simulated newsroom could not sign its stories");
            std::process::exit(1);
        };
        let wall = started.elapsed();
        println!(
            "{:>6} {:>6} {:>8} {:>6}/{:<3} {:>6} ({:>2}) {:>9} {:>10} {:>12.1} {:>10.2} {:>9.2}",
            r.nodes,
            config.liars,
            stories,
            r.complete,
            r.honest,
            r.liar_bans,
            r.liars_banned,
            r.honest_bans,
            r.messages,
            r.bytes as f64 / 1e6,
            r.settled.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
}
