//! `--json` output of the built binary (docs/cli-json.md): each command's
//! object parsed with serde_json and its fields checked against what the
//! data directory holds; errors as JSON with the same exit code as text.

mod common;

use std::path::Path;

use common::process::{NodeProcess, kolokol, newsroom_and_reader, ok, publish, s};
use serde_json::Value;
use tempfile::TempDir;

/// Parses a command's standard output as exactly one JSON value.
fn parse(out: &[u8]) -> Value {
    let text = std::str::from_utf8(out).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn json_ok(data: &Path, args: &[&str]) -> Value {
    let v = parse(ok(data, args).as_bytes());
    assert_eq!(v["format"], 1, "{v}");
    v
}

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str().is_some_and(|t| {
        t.len() == len
            && t.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// Signs an article into a bundle file `out` with the newsroom.
fn bundle_file(data: &Path, newsroom: &Path, title: &str, out: &Path) -> String {
    let article = newsroom.join("bundle-article.md");
    std::fs::write(
        &article,
        format!("---\ntitle: {title}\nlang: en\n---\nBody.\n"),
    )
    .unwrap();
    ok(
        data,
        &[
            "bundle",
            "create",
            s(&article),
            "--newsroom",
            s(newsroom),
            "--out",
            s(out),
        ],
    )
    .trim()
    .to_owned()
}

#[test]
fn trust_list_verify_inspect_import_and_stats_as_json() {
    let dir = TempDir::new().unwrap();
    let (a, b, newsroom) = newsroom_and_reader(dir.path(), "a", "b", "json-news");

    let list = json_ok(&b, &["trust", "list", "--json"]);
    let pubs = list["publishers"].as_array().unwrap();
    assert_eq!(pubs.len(), 1);
    assert_eq!(pubs[0]["name"], "json-news");
    assert!(is_hex(&pubs[0]["root_key"], 64), "{list}");
    assert_eq!(pubs[0]["demo"], false);
    let root = pubs[0]["root_key"].as_str().unwrap().to_owned();

    // verify and inspect a bundle file.
    let file = dir.path().join("one.kolokol");
    let id = bundle_file(&a, &newsroom, "Verified in JSON", &file);
    let v = json_ok(&b, &["verify", "--json", s(&file)]);
    assert_eq!(v["ok"], true);
    let f = &v["files"][0];
    assert_eq!(f["ok"], true);
    assert_eq!(f["bundle"]["id"], id.as_str());
    assert!(is_hex(&f["bundle"]["id"], 64));
    assert_eq!(f["bundle"]["publisher"], root.as_str());
    assert_eq!(f["bundle"]["publisher_name"], "json-news");
    assert_eq!(f["bundle"]["title"], "Verified in JSON");
    assert_eq!(f["bundle"]["sequence"], 1);
    assert!(f["bundle"]["signed_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(is_hex(&f["bundle"]["signing_key"]["key"], 64));

    let i = json_ok(&b, &["inspect", "--json", s(&file)]);
    assert_eq!(i["verified"], false);
    assert_eq!(i["file_kind"], "bundle");
    let frames = i["frames"].as_array().unwrap();
    let manifest = frames.iter().find(|f| f["type"] == "manifest").unwrap();
    assert_eq!(manifest["id"], id.as_str());
    assert_eq!(manifest["title"], "Verified in JSON");
    assert!(frames.iter().any(|f| f["type"] == "certificate"));
    assert!(frames.iter().any(|f| f["type"] == "blob"));

    // A file cut short: verify says which, and fails as without --json.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.kolokol");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = kolokol(&b, &["verify", "--json", s(&file), s(&cut)]);
    let text = kolokol(&b, &["verify", s(&file), s(&cut)]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), text.status.code());
    let v = parse(&out.stdout);
    assert_eq!(v["ok"], false);
    assert_eq!(v["files"][0]["ok"], true);
    assert_eq!(v["files"][1]["ok"], false);
    assert!(
        v["files"][1]["error"]
            .as_str()
            .unwrap()
            .contains("cut.kolokol")
    );

    // import an archive (the newsroom's store: its second story) and the
    // bundle file into the reader, then its store's figures.
    publish(&a, &newsroom, "Second");
    let archive = dir.path().join("all.kolokol");
    ok(&a, &["export", "--out", s(&archive)]);
    let imp = json_ok(&b, &["import", "--json", s(&archive), s(&file)]);
    assert_eq!(imp["ok"], true);
    assert_eq!(imp["by_node"], false);
    assert_eq!(imp["files"][0]["new"], 1, "{imp}");
    assert_eq!(imp["files"][0]["rejected"], 0);
    assert_eq!(imp["files"][1]["new"], 1, "{imp}");
    let again = json_ok(&b, &["import", "--json", s(&archive)]);
    assert_eq!(again["files"][0]["new"], 0);
    assert_eq!(again["files"][0]["duplicate"], 1);

    let st = json_ok(&b, &["store", "stats", "--json"]);
    assert_eq!(st["bundles"], 2, "{st}");
    assert!(st["blobs"].as_u64().unwrap() >= 1);
    assert!(st["payload_bytes"].as_u64().unwrap() > 0);
    assert!(st["disk_bytes"].is_u64());
    assert_eq!(st["sealed"], false);
    let p = &st["publishers"][0];
    assert_eq!(p["name"], "json-news");
    assert_eq!(p["root_key"], root.as_str());
    assert_eq!(p["held"], serde_json::json!([[1, 2]]));
}

#[test]
fn errors_are_json_with_the_same_exit_code() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("empty");
    // status with no node.
    let out = kolokol(&data, &["status", "--json"]);
    let text = kolokol(&data, &["status"]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), text.status.code());
    let v = parse(&out.stdout);
    assert_eq!(v["format"], 1);
    assert_eq!(v["error"]["kind"], "no_node");
    assert!(v["error"]["message"].as_str().unwrap().contains("no node"));

    // inspect of a file that is not there.
    let missing = dir.path().join("missing.kolokol");
    let out = kolokol(&data, &["inspect", "--json", s(&missing)]);
    let text = kolokol(&data, &["inspect", s(&missing)]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), text.status.code());
    let v = parse(&out.stdout);
    assert_eq!(v["error"]["kind"], "io");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.kolokol")
    );
}

#[test]
fn status_of_a_running_node_as_json() {
    let dir = TempDir::new().unwrap();
    let (_a, b, _newsroom) = newsroom_and_reader(dir.path(), "a", "b", "status-news");
    let _node = NodeProcess::start(&b, &[]);
    let v = json_ok(&b, &["status", "--json"]);
    assert_eq!(v["locked"], false);
    assert_eq!(v["role"], "share");
    assert!(!v["peer_id"].as_str().unwrap().is_empty());
    assert!(!v["listen"].as_array().unwrap().is_empty());
    assert!(v["rejected"].is_u64());
    assert!(v["sync"]["bytes_sent"].is_u64());
    let p = &v["publishers"][0];
    assert_eq!(p["name"], "status-news");
    assert!(is_hex(&p["root_key"], 64), "{v}");
    assert_eq!(p["held"], 0);
    // No peer: the advice says so, as the text does.
    assert!(
        v["advice"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("no peers"))
    );
}
