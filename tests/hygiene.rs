//! What a seized or shared device gives away: the data directory's modes
//! whatever the umask, and logs at the default level that name no story
//! and no publisher. Real processes of the built binary throughout.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{BIN, DEADLINE, ok, s, wait_until};
use tempfile::TempDir;

/// Runs `kolokol --data-dir DATA ARGS` under `umask 000`, the loosest
/// there is, through `sh` (setting the umask in the child needs no
/// unsafe code that way).
fn loose(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.args([
        "-c",
        "umask 000; exec \"$0\" \"$@\"",
        BIN,
        "--data-dir",
        s(data),
    ])
    .args(args)
    .env_remove("KOLOKOL_NEWSROOM")
    .env_remove("KOLOKOL_LOG")
    .env_remove("RUST_LOG");
    c
}

fn loose_ok(data: &Path, args: &[&str]) -> Output {
    let out = loose(data, args).output().unwrap();
    assert!(
        out.status.success(),
        "kolokol {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every path under `root` (and `root`), with its mode, links not followed.
fn modes(root: &Path) -> Vec<(PathBuf, std::fs::FileType, u32)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(p) = pending.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                pending.push(e.unwrap().path());
            }
        }
        out.push((p, m.file_type(), m.permissions().mode() & 0o7777));
    }
    out
}

/// Fails unless every folder under `root` is 0700 and every file 0600.
fn assert_private(root: &Path, when: &str) {
    let all = modes(root);
    for (p, kind, mode) in &all {
        let want = if kind.is_dir() {
            0o700
        } else {
            assert!(
                kind.is_file(),
                "{when}: {} is neither file nor folder",
                p.display()
            );
            0o600
        };
        assert_eq!(*mode, want, "{when}: {} is {mode:o}", p.display());
    }
}

/// A `kolokol node` on `data` under `umask 000`, at the default log level,
/// its standard error kept in `stderr`; killed when dropped.
struct Node {
    child: Child,
    stderr: PathBuf,
}

impl Node {
    fn start(data: &Path, stderr: &Path, args: &[&str]) -> Self {
        let _ = std::fs::remove_file(data.join("node.toml"));
        let mut all = vec!["node", "--gateway", "127.0.0.1:0", "--no-mdns"];
        all.extend_from_slice(args);
        let child = loose(data, &all)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        wait_until("node.toml to appear", || data.join("node.toml").exists());
        Self {
            child,
            stderr: stderr.to_owned(),
        }
    }

    fn gateway(data: &Path) -> String {
        let text = std::fs::read_to_string(data.join("node.toml")).unwrap();
        let file: kolokol::node::control::NodeFile = toml::from_str(&text).unwrap();
        file.gateway.unwrap()
    }

    /// SIGTERM, a clean exit, and what the node wrote on standard error.
    fn stop(mut self) -> String {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(start.elapsed() < DEADLINE, "the node did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
        std::fs::read_to_string(&self.stderr).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET; the status and the whole answer (head and body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    tcp.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A newsroom folder in `dir` (its own data directory beside), the
/// publisher file it wrote, and an article with an image too large to be
/// kept inline in the index, so that the store writes a blob file.
fn newsroom(dir: &Path, name: &str, display: &str, title: &str) -> (PathBuf, PathBuf, PathBuf) {
    let folder = dir.join("newsroom");
    ok(
        &dir.join("newsroom-data"),
        &[
            "newsroom",
            "init",
            "--name",
            name,
            "--display-name",
            display,
            "--dir",
            s(&folder),
        ],
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut png = std::fs::read(repo.join("src/demo/stories/bell.png")).unwrap();
    // Bytes after a PNG's end are ignored by readers; here they make the
    // file larger than what the index keeps inline (16 KiB).
    png.extend(std::iter::repeat_n(0u8, 40 * 1024));
    std::fs::write(dir.join("big.png"), png).unwrap();
    let article = dir.join("story.md");
    std::fs::write(
        &article,
        format!(
            "---\ntitle: {title}\nlang: en\nsummary: {title} summed up\n---\nText of {title}.\n\n![bell](big.png)\n"
        ),
    )
    .unwrap();
    (folder.clone(), folder.join(format!("{name}.toml")), article)
}

/// Publishes `article` into the store (or running node) of `data` under
/// `umask 000`; returns the bundle id.
fn publish(data: &Path, folder: &Path, article: &Path, dir: &Path) -> String {
    let out = loose_ok(
        data,
        &[
            "publish",
            s(article),
            "--newsroom",
            s(folder),
            "--image",
            s(&dir.join("big.png")),
        ],
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_data_directory_is_private_under_any_umask_and_tightened_again() {
    let dir = TempDir::new().unwrap();
    let (folder, public, article) = newsroom(dir.path(), "mode-news", "Mode News", "Modes");
    let data = dir.path().join("reader");

    // Everything the commands and the node make is private, though the
    // umask would let anyone read and write it.
    loose_ok(&data, &["trust", "add", s(&public)]);
    let id = publish(&data, &folder, &article, dir.path());
    assert_eq!(id.len(), 64, "{id}");
    assert_private(&data, "after trust add and publish");
    let all = modes(&data);
    let has = |part: &str| {
        all.iter()
            .any(|(p, kind, _)| kind.is_file() && p.to_string_lossy().contains(part))
    };
    assert!(has("/store/index/db"), "sled's files are checked too");
    assert!(has("/store/blobs/"), "a blob file is checked too");
    assert!(has("/trust/mode-news.toml"));

    let node = Node::start(&data, &dir.path().join("node1.err"), &["--share"]);
    let (status, _) = http_get(&Node::gateway(&data), &format!("/story/{id}"));
    assert_eq!(status, 200);
    assert!(data.join("node.key").exists() && data.join("control.token").exists());
    assert_private(&data, "while the node runs");
    let err = node.stop();
    assert!(
        !err.contains("open to other users"),
        "nothing to tighten: {err}"
    );
    assert_private(&data, "after the node stopped");

    // Opened up by hand (or by a careless copy): the next start closes
    // it again, and says how many paths it changed, not which.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = data.join("store");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o777)).unwrap();
    let trust_file = data.join("trust/mode-news.toml");
    std::fs::set_permissions(&trust_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = store.join("index/db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::write(data.join("config.toml"), "").unwrap();
    std::fs::set_permissions(
        data.join("config.toml"),
        std::fs::Permissions::from_mode(0o664),
    )
    .unwrap();
    // A link in the data directory is not followed: what it points to,
    // outside, keeps its mode.
    let outside = dir.path().join("export.kolokol");
    std::fs::write(&outside, b"x").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();

    let node = Node::start(&data, &dir.path().join("node2.err"), &[]);
    let err = node.stop();
    std::fs::remove_file(data.join("link")).unwrap();
    assert_private(&data, "after a start on an opened directory");
    assert_eq!(
        std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // The folder and the store's, the trust file and config.toml; sled's
    // own file is tightened without a word (it makes some at every open).
    assert!(
        err.contains("4 path(s) in the data directory were open"),
        "{err}"
    );
    assert!(!err.contains("mode-news"), "names only at debug: {err}");

    // The commands that open the store tighten it too.
    std::fs::set_permissions(&trust_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = loose_ok(&data, &["store", "stats"]);
    assert_private(&data, "after store stats");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 path(s) in the data directory were open"),
        "{err}"
    );
}

#[test]
fn logs_at_the_default_level_name_no_story_and_no_publisher() {
    let dir = TempDir::new().unwrap();
    let title = "Quixotic Marmalade Uprising";
    let (folder, public, article) =
        newsroom(dir.path(), "zorblatt-herald", "Zorblatt Herald", title);
    // A publisher file with a bootstrap address that is not one: the node
    // warns about it, without saying whose file it is.
    let text = std::fs::read_to_string(&public).unwrap();
    let with_bad = dir.path().join("zorblatt-herald.toml");
    std::fs::write(
        &with_bad,
        format!("{text}bootstrap = [\"not an address\"]\n"),
    )
    .unwrap();
    let data = dir.path().join("reader");
    ok(&data, &["trust", "add", s(&with_bad)]);

    let node = Node::start(&data, &dir.path().join("node.err"), &[]);
    let gateway = Node::gateway(&data);
    let id = publish(&data, &folder, &article, dir.path());
    wait_until("the story in the gateway", || {
        http_get(&gateway, "/api/v1/stories").1.contains(title)
    });
    let paths = [
        "/".to_owned(),
        "/p/zorblatt-herald".into(),
        format!("/story/{id}"),
        "/search?q=Marmalade".into(),
        "/feed.atom".into(),
        "/p/zorblatt-herald/feed.atom".into(),
        "/api/v1/publishers/zorblatt-herald".into(),
        format!("/api/v1/stories/{id}"),
        format!("/media/{id}/media/big.png"),
    ];
    for path in &paths {
        let (status, text) = http_get(&gateway, path);
        assert_eq!(status, 200, "{path}: {text}");
    }
    assert!(http_get(&gateway, "/").1.contains("Zorblatt Herald"));
    let (status, _) = http_get(&gateway, &format!("/story/{}", "0".repeat(64)));
    assert_eq!(status, 404);
    let err = node.stop();

    assert!(
        err.contains("bootstrap address that is not a multiaddress"),
        "the warning still comes: {err}"
    );
    let lower = err.to_lowercase();
    for secret in ["quixotic", "marmalade", "zorblatt", &id[..16]] {
        assert!(!lower.contains(secret), "{secret:?} in the log: {err}");
    }
}
