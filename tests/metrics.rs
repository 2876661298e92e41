//! The operator's endpoints of a real node: `/metrics` parsed as the
//! Prometheus text format, and `/healthz`; and `carry` limiting what a
//! node carries.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::*;
use kolokol::config::Config;
use kolokol::net::NetConfig;
use kolokol::trust::TrustList;
use tempfile::TempDir;

/// A GET on `addr`: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = common::gateway::get(addr, path).await;
    (r.status, r.text())
}

/// Parses the text exposition format strictly: `# HELP`, `# TYPE`,
/// `# UNIT` and `# EOF` comments, and samples `name{label="value",...}
/// number`. Returns each sample by its name and labels.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            let mut parts = c.splitn(3, ' ');
            let kind = parts.next().unwrap();
            match kind {
                "EOF" => continue,
                "HELP" | "TYPE" | "UNIT" => {
                    let name = parts.next().expect("a metric name");
                    assert!(name_ok(name), "bad name in {line:?}");
                    if kind == "TYPE" {
                        let t = parts.next().expect("a type");
                        assert!(
                            [
                                "counter",
                                "gauge",
                                "histogram",
                                "summary",
                                "info",
                                "unknown"
                            ]
                            .contains(&t),
                            "{line:?}"
                        );
                        types.insert(name.to_owned(), t.to_owned());
                    }
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "bad name in {line:?}");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                assert!(name_ok(k), "bad label in {line:?}");
                assert!(!v.trim_end_matches('"').contains('"'), "{line:?}");
            }
        }
        samples.insert(series.to_owned(), value);
    }
    assert!(!types.is_empty(), "typed metrics");
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_health_answers() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("node");
    let p = Publisher::new(1);
    let other = Publisher::new(21);
    let trusting = |data: &std::path::Path| {
        let list = TrustList::open(data).unwrap();
        for (pb, name) in [(&p, "metric-news"), (&other, "other-news")] {
            list.add_file(&publisher_file(pb, name)).unwrap();
        }
    };
    trusting(&data);
    let mut config = Config {
        net: NetConfig::for_tests(),
        metrics: Some("127.0.0.1:0".into()),
        carry: vec!["metric-news".into()],
        ..Config::default()
    };
    config.gateway.enabled = false;
    let running = kolokol::node::start(&data, config.clone()).await.unwrap();
    let addr = running.metrics.expect("metrics served");

    let (file, _) = story(&p, 1, 1, b"<p>Counted</p>").bundle_file(vec![p.head(1, T0.plus(3600))]);
    running.network.publish(file).await.unwrap();

    let (code, text) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let samples = parse(&text);
    assert_eq!(
        samples.get("kolokol_bundles_held{publisher=\"metric-news\"}"),
        Some(&1.0),
        "{text}"
    );
    assert_eq!(
        samples.get("kolokol_head_sequence{publisher=\"metric-news\"}"),
        Some(&1.0)
    );
    assert_eq!(samples.get("kolokol_peers"), Some(&0.0));
    assert_eq!(samples.get("kolokol_store_bundles"), Some(&1.0));
    // The publisher not carried has no series: the node does not carry it.
    assert!(!text.contains("other-news"), "{text}");
    // gossipsub's own counters are there too.
    assert!(
        samples.keys().any(|k| k.starts_with("gossipsub_")),
        "{text}"
    );

    let (code, body) = get(addr, "/healthz").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");

    running.stop().await.unwrap();

    // A publisher to carry that the trust list lacks is refused by name.
    let mut wrong = config;
    wrong.carry = vec!["nobody-news".into()];
    let elsewhere = dir.path().join("elsewhere");
    trusting(&elsewhere);
    let err = kolokol::node::start(&elsewhere, wrong)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("nobody-news"), "{err}");
}
