//! The built `kolokol` binary: running commands on a data directory,
//! running a node process, and waiting on what they do with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kolokol");

/// How long any one wait on a process may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs kolokol on the data directory `data`, outside any newsroom folder
/// the environment names.
pub fn kolokol(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("KOLOKOL_NEWSROOM")
        .output()
        .unwrap()
}

/// Runs kolokol like [`kolokol`], expects success, and returns standard
/// output.
pub fn ok(data: &Path, args: &[&str]) -> String {
    let out = kolokol(data, args);
    assert!(
        out.status.success(),
        "kolokol {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Data directories `a` (with a newsroom `name`) and `b` (trusting it),
/// and the newsroom's folder, all in `dir`.
pub fn newsroom_and_reader(
    dir: &Path,
    a: &str,
    b: &str,
    name: &str,
) -> (PathBuf, PathBuf, PathBuf) {
    let (a, b, newsroom) = (dir.join(a), dir.join(b), dir.join("newsroom"));
    ok(
        &a,
        &["newsroom", "init", "--name", name, "--dir", s(&newsroom)],
    );
    ok(
        &b,
        &["trust", "add", s(&newsroom.join(format!("{name}.toml")))],
    );
    (a, b, newsroom)
}

/// Publishes a one-line story titled `title` from `newsroom` into the
/// node (or store) on `data`; returns its bundle id.
pub fn publish(data: &Path, newsroom: &Path, title: &str) -> String {
    let article = newsroom.join(format!("{}.md", blake3::hash(title.as_bytes()).to_hex()));
    std::fs::write(
        &article,
        format!("---\ntitle: {title}\nlang: en\n---\nText.\n"),
    )
    .unwrap();
    ok(data, &["publish", s(&article), "--newsroom", s(newsroom)])
        .trim()
        .to_owned()
}

/// A loopback TCP port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A helper process (nginx, a SOCKS server), killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` until it holds, failing after [`DEADLINE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `kolokol node`, killed when dropped.
pub struct NodeProcess {
    pub child: Child,
    data: PathBuf,
}

impl NodeProcess {
    /// Starts a sharing node on `data` (tests' nodes serve one another,
    /// as with `NetConfig::for_tests()`), listening on loopback TCP with no
    /// mDNS and its gateway on a free port, plus `extra` arguments, and
    /// waits until it has written its `node.toml`.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0", "--share", "--no-mdns"];
        args.extend_from_slice(extra);
        Self::start_with(data, &args)
    }

    /// Starts `kolokol node` on `data` with only `args` (and its gateway
    /// on a free port), as a reader would start it, and waits until it
    /// has written its `node.toml`. Its standard output is kept for
    /// [`Self::stdout`].
    pub fn start_with(data: &Path, args: &[&str]) -> Self {
        let _ = std::fs::remove_file(data.join("node.toml"));
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .arg("node")
            // Tests never take the default gateway port.
            .args(["--gateway", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let n = Self {
            child,
            data: data.to_owned(),
        };
        wait_until("node.toml to appear", || data.join("node.toml").exists());
        n
    }

    /// The address others can dial, with the peer id.
    pub fn addr(&self) -> String {
        let text = std::fs::read_to_string(self.data.join("node.toml")).unwrap();
        let file: kolokol::node::control::NodeFile = toml::from_str(&text).unwrap();
        format!("{}/p2p/{}", file.listen[0], file.peer_id)
    }

    /// What the node printed, once it has stopped.
    #[allow(dead_code)] // not every test crate reads it
    pub fn stdout(&mut self) -> String {
        let mut text = String::new();
        if let Some(out) = self.child.stdout.as_mut() {
            let _ = std::io::Read::read_to_string(out, &mut text);
        }
        text
    }

    /// Sends SIGTERM and waits for the node to stop.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the node did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
