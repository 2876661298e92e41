//! `kolokol newsroom mirrors` end to end: the list is signed with the
//! newsroom's key, kept in its folder and carried by its publisher file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::process::BIN;
use kolokol::newsroom::{MIRROR_LIST_FILE, Newsroom};
use kolokol::proto::Timestamp;
use kolokol::trust::PublisherFile;
use tempfile::TempDir;

const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
const PASSPHRASE: &str = "correct horse battery";
const CHEAP_KDF: &str = "m=64,t=1,p=1";

fn run(tmp: &Path, args: &[&str], passphrase: bool) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("KOLOKOL_DATA_DIR", tmp.join("reader"))
        .env("KOLOKOL_NEWSROOM", tmp.join("newsroom"))
        .env("KOLOKOL_KDF_COST", CHEAP_KDF)
        .env_remove("KOLOKOL_PASSPHRASE")
        .env_remove("RUST_LOG");
    if passphrase {
        cmd.env("KOLOKOL_PASSPHRASE", PASSPHRASE);
    }
    cmd.output().unwrap()
}

fn ok(tmp: &Path, args: &[&str]) -> String {
    let out = run(tmp, args, true);
    assert!(
        out.status.success(),
        "kolokol {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(tmp: &Path, args: &[&str], passphrase: bool) -> String {
    let out = run(tmp, args, passphrase);
    assert_eq!(out.status.code(), Some(1), "kolokol {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn addr(port: u16) -> String {
    format!("/ip4/192.0.2.1/tcp/{port}/p2p/{PEER}")
}

fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

#[test]
fn a_signed_list_goes_into_the_folder_and_the_publisher_file() {
    let tmp = TempDir::new().unwrap();
    let tmp = tmp.path();
    ok(
        tmp,
        &["newsroom", "init", "--name", "mirrored", "--encrypt"],
    );
    let a1 = addr(4001);
    let a2 = addr(4002);
    // The key is encrypted: without the passphrase nothing is signed.
    let err = fails(tmp, &["newsroom", "mirrors", "--libp2p", &a1], false);
    assert!(err.contains("passphrase"), "{err}");
    assert!(!tmp.join("newsroom").join(MIRROR_LIST_FILE).exists());
    let out = ok(
        tmp,
        &[
            "newsroom",
            "mirrors",
            "--libp2p",
            &a1,
            &a2,
            "--https",
            "https://cdn.example/news",
            "--days",
            "30",
        ],
    );
    assert!(
        out.contains("2 libp2p address(es) and 1 web tree(s)"),
        "{out}"
    );
    let kept: PathBuf = tmp.join("newsroom").join(MIRROR_LIST_FILE);
    assert!(out.contains(&kept.display().to_string()), "{out}");
    assert!(out.contains("mirrored.toml"), "{out}");
    let bytes = std::fs::read(&kept).unwrap();
    // The publisher file carries the same list, which the newsroom's own
    // policy verifies.
    let file = PublisherFile::load(&tmp.join("newsroom/mirrored.toml")).unwrap();
    assert_eq!(file.mirror_list_bytes().unwrap(), Some(bytes.clone()));
    let newsroom = Newsroom::open(&tmp.join("newsroom")).unwrap();
    let list = newsroom
        .policy()
        .unwrap()
        .verify_mirror_list(&bytes, now())
        .unwrap();
    assert_eq!(list.libp2p, vec![a1.clone(), a2]);
    assert_eq!(list.https, vec!["https://cdn.example/news".to_string()]);
    assert_eq!(list.expires_at.0 - list.issued_at.0, 30 * 86_400);
    // Signed again at once: the new list still replaces the old one.
    ok(tmp, &["newsroom", "mirrors", "--libp2p", &a1]);
    let again = std::fs::read(&kept).unwrap();
    let newer = newsroom
        .policy()
        .unwrap()
        .verify_mirror_list(&again, now())
        .unwrap();
    assert!(newer.replaces(&list));
    // A reader that adds the file keeps the list in its trust list.
    ok(
        tmp,
        &[
            "trust",
            "add",
            tmp.join("newsroom/mirrored.toml").to_str().unwrap(),
        ],
    );
    let trusted = PublisherFile::load(&tmp.join("reader/trust/mirrored.toml")).unwrap();
    assert_eq!(trusted.mirror_list_bytes().unwrap(), Some(again));
    // With the certificate that signs it, for a reader who knows no key yet.
    let cert = trusted.mirror_certificate_bytes().unwrap().unwrap();
    assert_eq!(kolokol::proto::CertId::of(&cert), newer.certificate);
}

#[test]
fn bad_addresses_urls_and_validity_are_named() {
    let tmp = TempDir::new().unwrap();
    let tmp = tmp.path();
    ok(tmp, &["newsroom", "init", "--name", "mirrored"]);
    let no_peer = "/ip4/192.0.2.1/tcp/4001";
    let err = fails(tmp, &["newsroom", "mirrors", "--libp2p", no_peer], true);
    assert!(err.contains(no_peer) && err.contains("/p2p/"), "{err}");
    let garbled = format!("/ip4/999.1.2.3/tcp/1/p2p/{PEER}");
    let err = fails(tmp, &["newsroom", "mirrors", "--libp2p", &garbled], true);
    assert!(err.contains("not a multiaddress"), "{err}");
    let err = fails(
        tmp,
        &["newsroom", "mirrors", "--https", "http://cdn.example/"],
        true,
    );
    assert!(
        err.contains("http://cdn.example/") && err.contains("https://"),
        "{err}"
    );
    let err = fails(tmp, &["newsroom", "mirrors"], true);
    assert!(err.contains("at least one mirror"), "{err}");
    let a = addr(1);
    let err = fails(
        tmp,
        &["newsroom", "mirrors", "--libp2p", &a, "--days", "400"],
        true,
    );
    assert!(err.contains("1 to 366 days"), "{err}");
    assert!(!tmp.join("newsroom").join(MIRROR_LIST_FILE).exists());
}
