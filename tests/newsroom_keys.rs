//! Encrypted key files and the offline-root flow, through the built binary.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::process::{BIN, s};
use tempfile::TempDir;

const PASS: &str = "a passphrase for tests";
/// Cheap Argon2id cost: these tests are about the files, not the cost.
const CHEAP_KDF: &str = "m=64,t=1,p=1";

struct Env {
    tmp: TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            tmp: TempDir::new().unwrap(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Runs kolokol on the newsroom folder `newsroom` (unless `--dir` is
    /// given), with `passphrase` in the environment if any. Standard input
    /// is not a terminal, so nothing is ever asked.
    fn run(&self, passphrase: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("KOLOKOL_DATA_DIR", self.path("reader"))
            .env("KOLOKOL_NEWSROOM", self.path("newsroom"))
            .env("KOLOKOL_KDF_COST", CHEAP_KDF)
            .env_remove("KOLOKOL_PASSPHRASE")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        if let Some(p) = passphrase {
            cmd.env("KOLOKOL_PASSPHRASE", p);
        }
        cmd.output().unwrap()
    }

    fn ok(&self, passphrase: Option<&str>, args: &[&str]) -> String {
        let out = self.run(passphrase, args);
        assert!(
            out.status.success(),
            "kolokol {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, passphrase: Option<&str>, args: &[&str]) -> String {
        let out = self.run(passphrase, args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "kolokol {args:?} should fail with 1:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    fn article(&self, name: &str, title: &str) -> String {
        let p = self.path(name);
        std::fs::write(
            &p,
            format!("---\ntitle: {title}\nlang: en\n---\nBody of {title}.\n"),
        )
        .unwrap();
        p.display().to_string()
    }

    fn trust_newsroom(&self) {
        let public = self.path("newsroom/test-news.toml");
        self.ok(None, &["trust", "add", s(&public)]);
    }

    fn files_in(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// The public key a line `LABEL ed25519:...` names.
fn key_after(text: &str, label: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in {text}"));
    let start = line.find("ed25519:").unwrap();
    line[start..start + 8 + 64].to_owned()
}

#[test]
fn encrypted_newsroom_publishes_with_the_right_passphrase_only() {
    let env = Env::new();
    env.ok(
        Some(PASS),
        &["newsroom", "init", "--name", "test-news", "--encrypt"],
    );
    env.trust_newsroom();
    for key in ["root.key", "signing.key"] {
        let text = std::fs::read_to_string(env.path("newsroom").join(key)).unwrap();
        assert!(
            text.contains("format = \"kolokol-secret-key v1\""),
            "{text}"
        );
        assert!(!text.contains("secret ="), "{text}");
    }
    let info = env.ok(None, &["newsroom", "info"]);
    assert!(
        info.contains("root secret key: present, encrypted"),
        "{info}"
    );
    assert!(
        info.contains("signing secret key: present, encrypted"),
        "{info}"
    );

    let article = env.article("a.md", "First");
    let out = env.path("a.kolokol");
    let err = env.fails(
        Some("not the passphrase"),
        &["bundle", "create", &article, "--out", s(&out)],
    );
    assert!(
        err.contains("wrong passphrase or damaged key file:") && err.contains("signing.key"),
        "{err}"
    );
    assert!(!err.contains(PASS) && !err.contains("not the passphrase"));
    assert!(!out.exists());
    assert!(env.files_in("newsroom/published").is_empty());

    // Without any passphrase, the message says how to give one.
    let err = env.fails(None, &["bundle", "create", &article, "--out", s(&out)]);
    assert!(err.contains("KOLOKOL_PASSPHRASE"), "{err}");

    env.ok(
        Some(PASS),
        &["bundle", "create", &article, "--out", s(&out)],
    );
    let verified = env.ok(None, &["verify", s(&out)]);
    assert!(verified.contains("OK "), "{verified}");
    assert_eq!(env.files_in("newsroom/published").len(), 1);

    // rotate keeps the new signing key encrypted.
    env.fails(Some("not the passphrase"), &["newsroom", "rotate"]);
    env.ok(Some(PASS), &["newsroom", "rotate"]);
    let text = std::fs::read_to_string(env.path("newsroom/signing.key")).unwrap();
    assert!(text.contains("kolokol-secret-key v1"), "{text}");
}

#[test]
fn encrypt_and_decrypt_keys_round_trip() {
    let env = Env::new();
    env.ok(None, &["newsroom", "init", "--name", "test-news"]);
    env.trust_newsroom();
    let before = env.ok(None, &["newsroom", "info"]);
    assert!(before.contains("signing secret key: present, not encrypted"));
    let plain_signing = std::fs::read_to_string(env.path("newsroom/signing.key")).unwrap();
    let plain_root = std::fs::read_to_string(env.path("newsroom/root.key")).unwrap();
    let seed = |text: &str| {
        let start = text.find("secret = \"").unwrap() + 10;
        text[start..start + 64].to_owned()
    };
    let (signing_seed, root_seed) = (seed(&plain_signing), seed(&plain_root));

    // Too short a passphrase for a new encryption is refused.
    let err = env.fails(Some("short"), &["newsroom", "encrypt-keys"]);
    assert!(err.contains("at least"), "{err}");

    let out = env.ok(Some(PASS), &["newsroom", "encrypt-keys"]);
    assert!(out.contains("root.key: encrypted"), "{out}");
    assert!(out.contains("signing.key: encrypted"), "{out}");
    for (file, seed) in [("signing.key", &signing_seed), ("root.key", &root_seed)] {
        let bytes = std::fs::read(env.path("newsroom").join(file)).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            !text.contains(seed.as_str()),
            "{file} holds the seed in hex"
        );
        let raw = hex::decode(seed).unwrap();
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
            "{file} holds the seed's bytes"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(env.path("newsroom").join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    let encrypted = env.ok(None, &["newsroom", "info"]);
    assert!(encrypted.contains("signing secret key: present, encrypted"));
    // The same public keys, so the same identity.
    assert_eq!(
        key_after(&before, "root key:"),
        key_after(&encrypted, "root key:")
    );
    assert_eq!(
        key_after(&before, "key #1"),
        key_after(&encrypted, "key #1")
    );

    // A second encrypt changes nothing.
    let again = env.ok(Some(PASS), &["newsroom", "encrypt-keys"]);
    assert!(again.contains("signing.key: already encrypted"), "{again}");

    // Decrypting with a wrong passphrase changes nothing.
    env.fails(Some("a wrong passphrase"), &["newsroom", "decrypt-keys"]);
    assert!(
        std::fs::read_to_string(env.path("newsroom/root.key"))
            .unwrap()
            .contains("kolokol-secret-key v1")
    );

    env.ok(Some(PASS), &["newsroom", "decrypt-keys"]);
    assert_eq!(
        seed(&std::fs::read_to_string(env.path("newsroom/signing.key")).unwrap()),
        signing_seed
    );
    assert_eq!(
        seed(&std::fs::read_to_string(env.path("newsroom/root.key")).unwrap()),
        root_seed
    );
    // No temporary files are left behind.
    assert!(!env.files_in("newsroom").iter().any(|f| f.ends_with(".new")));
    // And it signs again without a passphrase.
    let article = env.article("a.md", "Plain again");
    let out = env.path("a.kolokol");
    env.ok(None, &["bundle", "create", &article, "--out", s(&out)]);
    env.ok(None, &["verify", s(&out)]);
}

#[test]
fn a_tampered_encrypted_key_file_fails_cleanly() {
    let env = Env::new();
    env.ok(
        Some(PASS),
        &["newsroom", "init", "--name", "test-news", "--encrypt"],
    );
    let path = env.path("newsroom/signing.key");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("ciphertext = \"").unwrap() + 14;
    let mut bytes = text.into_bytes();
    bytes[start] = if bytes[start] == b'0' { b'1' } else { b'0' };
    std::fs::write(&path, &bytes).unwrap();
    let article = env.article("a.md", "Story");
    let out = env.path("a.kolokol");
    let err = env.fails(
        Some(PASS),
        &["bundle", "create", &article, "--out", s(&out)],
    );
    assert!(
        err.contains("wrong passphrase or damaged key file:"),
        "{err}"
    );
    assert!(!out.exists());

    // An oversize file is refused before it is parsed.
    std::fs::write(&path, vec![b'#'; 10_000]).unwrap();
    let err = env.fails(
        Some(PASS),
        &["bundle", "create", &article, "--out", s(&out)],
    );
    assert!(err.contains("limit"), "{err}");
}

/// Two folders: `newsroom` online, without root.key after export-root, and
/// `offline` with it.
fn offline_pair(env: &Env, encrypted: bool) {
    let pass = encrypted.then_some(PASS);
    let mut init = vec!["newsroom", "init", "--name", "test-news"];
    if encrypted {
        init.push("--encrypt");
    }
    env.ok(pass, &init);
    env.trust_newsroom();
    let offline = env.path("offline");
    env.ok(pass, &["newsroom", "export-root", "--out", s(&offline)]);
    assert!(!env.path("newsroom/root.key").exists());
    assert!(offline.join("root.key").exists());
    let info = env.ok(None, &["newsroom", "info"]);
    assert!(info.contains("root secret key: absent"), "{info}");
}

#[test]
fn offline_root_flow_certifies_a_new_key_that_publishes() {
    let env = Env::new();
    offline_pair(&env, true);
    let offline = env.path("offline");

    // Online, the root key is missing, and the message points to the flow.
    let err = env.fails(Some(PASS), &["newsroom", "rotate"]);
    assert!(err.contains("root.key is missing"), "{err}");
    assert!(err.contains("sign-request"), "{err}");

    let req = env.path("req.bin");
    let out = env.ok(
        Some(PASS),
        &["newsroom", "request", "--out", s(&req), "--valid", "90d"],
    );
    let new_key = key_after(&out, "new pending signing key");
    // The pending key is encrypted like the rest of the folder.
    let pending = std::fs::read_to_string(env.path("newsroom/signing.key.pending")).unwrap();
    assert!(pending.contains("kolokol-secret-key v1"));

    let cert = env.path("cert.bin");
    let shown = env.ok(
        Some(PASS),
        &[
            "newsroom",
            "sign-request",
            s(&req),
            "--dir",
            s(&offline),
            "--out",
            s(&cert),
        ],
    );
    assert!(shown.contains(&new_key), "{shown}");
    assert!(shown.contains("serial       2"), "{shown}");

    // Nothing published with the old key is lost, and the new key signs.
    let installed = env.ok(Some(PASS), &["newsroom", "install-cert", s(&cert)]);
    assert!(installed.contains(&new_key), "{installed}");
    assert!(!env.path("newsroom/signing.key.pending").exists());
    let info = env.ok(None, &["newsroom", "info"]);
    assert_eq!(key_after(&info, "key #2"), new_key);

    let article = env.article("a.md", "After the new key");
    let story = env.path("a.kolokol");
    env.ok(
        Some(PASS),
        &["bundle", "create", &article, "--out", s(&story)],
    );
    let verified = env.ok(None, &["verify", s(&story)]);
    assert!(verified.contains("OK "), "{verified}");
    assert!(verified.contains(&new_key), "{verified}");

    // The same certificate does not install twice.
    env.fails(Some(PASS), &["newsroom", "install-cert", s(&cert)]);
}

#[test]
fn a_request_changed_in_transit_is_refused() {
    let env = Env::new();
    offline_pair(&env, false);
    let offline = env.path("offline");
    let req = env.path("req.bin");
    env.ok(
        None,
        &["newsroom", "request", "--out", s(&req), "--valid", "90d"],
    );
    let good = std::fs::read(&req).unwrap();
    // Flip one bit at a time across the body: every change is refused.
    let cert = env.path("cert.bin");
    for i in [0, 5, 40, good.len() / 2, good.len() - 70] {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let bad_path = env.path(&format!("bad{i}.bin"));
        std::fs::write(&bad_path, &bad).unwrap();
        let err = env.fails(
            None,
            &[
                "newsroom",
                "sign-request",
                s(&bad_path),
                "--dir",
                s(&offline),
                "--out",
                s(&cert),
            ],
        );
        assert!(
            err.contains("refused") || err.contains("certificate request"),
            "{err}"
        );
        assert!(!cert.exists());
    }
    // An oversize request is refused before decoding.
    let big = env.path("big.bin");
    std::fs::write(&big, vec![0u8; 100_000]).unwrap();
    let err = env.fails(
        None,
        &[
            "newsroom",
            "sign-request",
            s(&big),
            "--dir",
            s(&offline),
            "--out",
            s(&cert),
        ],
    );
    assert!(err.contains("limit"), "{err}");

    // A request for another newsroom is refused too.
    let other = Env::new();
    other.ok(None, &["newsroom", "init", "--name", "test-news"]);
    let other_req = other.path("req.bin");
    other.ok(None, &["newsroom", "request", "--out", s(&other_req)]);
    let err = env.fails(
        None,
        &[
            "newsroom",
            "sign-request",
            s(&other_req),
            "--dir",
            s(&offline),
            "--out",
            s(&cert),
        ],
    );
    assert!(
        err.contains("refused: the request is for newsroom"),
        "{err}"
    );
    assert!(!cert.exists());
    // The untouched one still signs.
    env.ok(
        None,
        &[
            "newsroom",
            "sign-request",
            s(&req),
            "--dir",
            s(&offline),
            "--out",
            s(&cert),
        ],
    );
}

#[test]
fn a_certificate_for_another_key_is_refused() {
    let env = Env::new();
    offline_pair(&env, false);
    let offline = env.path("offline");
    let first = env.path("first.req");
    let second = env.path("second.req");
    env.ok(None, &["newsroom", "request", "--out", s(&first)]);
    let cert = env.path("first.cert");
    env.ok(
        None,
        &[
            "newsroom",
            "sign-request",
            s(&first),
            "--dir",
            s(&offline),
            "--out",
            s(&cert),
        ],
    );
    // A newer request replaced the pending key the certificate is for.
    env.ok(None, &["newsroom", "request", "--out", s(&second)]);
    let err = env.fails(None, &["newsroom", "install-cert", s(&cert)]);
    assert!(err.contains("not for the pending key"), "{err}");
    assert!(env.path("newsroom/signing.key.pending").exists());
    assert_eq!(env.files_in("newsroom/certs").len(), 1);

    // A certificate signed by another newsroom's root is refused.
    let other = Env::new();
    other.ok(None, &["newsroom", "init", "--name", "test-news"]);
    let foreign = other.path("newsroom/certs/0000000001.cert");
    let err = env.fails(None, &["newsroom", "install-cert", s(&foreign)]);
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn revocation_made_offline_is_installed_online() {
    let env = Env::new();
    offline_pair(&env, false);
    let offline = env.path("offline");
    let info = env.ok(None, &["newsroom", "info"]);
    let key1 = key_after(&info, "key #1");

    // Online revoke needs the root key, and says where to go.
    let err = env.fails(None, &["newsroom", "revoke", "1"]);
    assert!(err.contains("root.key is missing"), "{err}");

    let out = env.ok(None, &["newsroom", "revoke", "1", "--dir", s(&offline)]);
    let rev_file = out
        .lines()
        .find_map(|l| l.strip_prefix("revocation file: "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("no revocation file in {out}"))
        .to_owned();
    let installed = env.ok(None, &["newsroom", "install-revocation", &rev_file]);
    assert!(installed.contains(&key1), "{installed}");
    let again = env.ok(None, &["newsroom", "install-revocation", &rev_file]);
    assert!(again.contains("already known"), "{again}");
    let info = env.ok(None, &["newsroom", "info"]);
    assert!(info.contains("REVOKED"), "{info}");

    // The revoked key no longer signs; a certified new one does, and the
    // story carries the revocation.
    let article = env.article("a.md", "Story");
    let story = env.path("a.kolokol");
    env.fails(None, &["bundle", "create", &article, "--out", s(&story)]);
    let req = env.path("r.req");
    let cert = env.path("r.cert");
    env.ok(None, &["newsroom", "request", "--out", s(&req)]);
    env.ok(
        None,
        &[
            "newsroom",
            "sign-request",
            s(&req),
            "--dir",
            s(&offline),
            "--out",
            s(&cert),
        ],
    );
    env.ok(None, &["newsroom", "install-cert", s(&cert)]);
    env.ok(None, &["bundle", "create", &article, "--out", s(&story)]);
    env.ok(None, &["verify", s(&story)]);

    // A tampered revocation is refused.
    let mut bad = std::fs::read(&rev_file).unwrap();
    bad[3] ^= 1;
    let bad_path = env.path("bad.rev");
    std::fs::write(&bad_path, &bad).unwrap();
    env.fails(None, &["newsroom", "install-revocation", s(&bad_path)]);
}
