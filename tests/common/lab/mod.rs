//! The censor lab: a small "country" built out of Linux network
//! namespaces, for tests that need a censor between a reader and a mirror.
//!
//! ```text
//!  OUTSIDE (mirror host)          ROUTER (the censor)          INSIDE (reader)
//!  198.18.1.2, 198.18.1.3 ---- 198.18.1.1 | 198.18.2.1 ---- 198.18.2.2
//!           <base>oa ........ <base>ro      <base>ri ........ <base>ia
//! ```
//!
//! Every lab has its own namespaces, named `kk<pid>n<k>` plus `o`, `r` or
//! `i` (the veths take the same base and live only inside the lab's
//! namespaces), so labs of one test binary run side by side and a lab left
//! by a killed run is found again and swept by the next [`Lab::new`].
//! Only 198.18.0.0/15 (the benchmarking range) is used; the host's own
//! interfaces, routes and firewall are never touched.
//!
//! The censor is nftables in the ROUTER ([`Censor`]: the `forward` hook,
//! and the router's own traffic over its veth towards OUTSIDE), a shaping
//! of the inside link ([`Shape`]: tbf for the rate, nft `numgen` for
//! loss, netem for delay where the kernel has it), and tcpdump on a router
//! veth ([`Capture`]) whose pcap is parsed and reassembled here.
//! Where the kernel cannot act on a flow itself (delay with no netem; next,
//! freeze a flow after N bytes), nft `redirect`s INSIDE's TCP to a relay
//! thread in the ROUTER (module `relay`), which finds the real destination
//! with `SO_ORIGINAL_DST` and dials it, censored like forwarded traffic.
//! (The kernel here has no `sch_netem` and no `nft queue`.)
//!
//! Needs root and `ip`, `nft`, `tc`, `tcpdump` and `microsocks`; without
//! them [`Lab::new`] says why and returns `None`, and the tests pass
//! without running. `KOLOKOL_LAB=require` turns that skip into a failure
//! (for CI, where the lab must run).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::process::BIN;

/// The mirror host's address, in OUTSIDE.
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// OUTSIDE's second address, for a proxy beside the mirror.
pub const PROXY_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 3);
/// The router's address towards OUTSIDE.
pub const ROUTER_OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The router's address towards INSIDE.
pub const ROUTER_INSIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
/// The reader's address, in INSIDE.
pub const INSIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);

/// How long any one wait in the lab may take (a process to start, a
/// capture to see its packets, a probe to get its answer).
pub const LAB_DEADLINE: Duration = Duration::from_secs(30);

/// The programs a lab runs.
const TOOLS: [&str; 5] = ["ip", "nft", "tc", "tcpdump", "microsocks"];

/// The start of every lab namespace's name.
const PREFIX: &str = "kk";

/// Labs made by this process so far, for unique names.
static LABS: AtomicU32 = AtomicU32::new(0);
/// Held by a sweep, and by a new lab until it holds its lock. A sweep
/// takes a lab of this process without a held lock for a stale one, so
/// without this a sweep in another test's thread could find a lab half
/// made (its folder there, its lock not yet taken) and delete its
/// namespaces while they were being made: seen once in CI, as a
/// namespace gone right after `ip netns add`.
static SETUP: Mutex<()> = Mutex::new(());

/// One of the lab's three namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The free world: the mirror (and a proxy) at 198.18.1.2 and .3.
    Outside,
    /// The censor, forwarding between the two.
    Router,
    /// The reader, at 198.18.2.2.
    Inside,
}

impl Side {
    fn letter(self) -> char {
        match self {
            Side::Outside => 'o',
            Side::Router => 'r',
            Side::Inside => 'i',
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Outside => "OUTSIDE",
            Side::Router => "ROUTER",
            Side::Inside => "INSIDE",
        })
    }
}

/// A lab: three namespaces, the censor between them, and what runs in
/// them. Dropping it kills every process left in its namespaces and
/// deletes them (their veths go with them) and their `/etc/netns` folders.
pub struct Lab {
    name: String,
    base: String,
    dir: PathBuf,
    /// `<dir>/lock`, flock'ed while the lab lives: what tells a sweep
    /// in any process that the lab is in use.
    _lock: File,
    children: Mutex<Vec<Child>>,
    logs: Mutex<Vec<(String, PathBuf)>>,
    /// Files made in `dir` so far, for unique names.
    files: AtomicU32,
    /// The delay relay, while a [`Shape`] asks for one.
    relay: Mutex<Option<probe::Served>>,
}

/// Says a figure of the lab: on standard error, and as a line of
/// `$KOLOKOL_ARTIFACTS/censor-lab.txt`, which `scripts/test` prints at the
/// end (cargo test shows no output of a test that passes).
pub fn report(line: &str) {
    eprintln!("{line}");
    if let Some(dir) = std::env::var_os("KOLOKOL_ARTIFACTS") {
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(&dir).join("censor-lab.txt"))
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// Says a test is skipped for want of a tool, or fails it under
/// `KOLOKOL_LAB=require` (as CI runs).
pub fn skip(line: &str) {
    if std::env::var("KOLOKOL_LAB").as_deref() == Ok("require") {
        panic!("{line}, and KOLOKOL_LAB=require");
    }
    eprintln!("{line}");
}

impl Lab {
    /// Builds a lab for the test `name`, or says why it cannot and
    /// returns `None` (not root, or a tool missing), unless
    /// `KOLOKOL_LAB=require`. Also sweeps labs left by dead processes.
    pub fn new(name: &str) -> Option<Lab> {
        if let Err(why) = Self::can_run() {
            let line = format!(
                "censor lab skipped: needs root and ip/nft/tc/tcpdump/microsocks ({why}); \
                 {name} did not run"
            );
            skip(&line);
            return None;
        }
        let setup = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        sweep_stale();
        let k = LABS.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}n{k}", std::process::id());
        // Veth names are the base and two letters, within IFNAMSIZ.
        assert!(
            base.len() + 2 <= 15,
            "too many labs in one process for short names: {base}"
        );
        let dir = lab_dir(&base);
        // Left by a dead process of the same id: not in use (swept above).
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let lock = File::create(dir.join("lock")).expect("the lab's lock file");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .expect("locking the lab's lock file");
        drop(setup);
        let lab = Lab {
            name: name.to_owned(),
            base,
            dir,
            _lock: lock,
            children: Mutex::new(Vec::new()),
            logs: Mutex::new(Vec::new()),
            files: AtomicU32::new(0),
            relay: Mutex::new(None),
        };
        // A failure from here on drops `lab`, which deletes what was made.
        lab.build();
        Some(lab)
    }

    fn can_run() -> Result<(), String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not root".into());
        }
        let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
        if !missing.is_empty() {
            return Err(format!("not found: {}", missing.join(", ")));
        }
        Ok(())
    }

    fn build(&self) {
        let (o, r, i) = (
            self.ns(Side::Outside),
            self.ns(Side::Router),
            self.ns(Side::Inside),
        );
        for ns in [&o, &r, &i] {
            run("ip", &["netns", "add", ns]);
        }
        for side in [Side::Outside, Side::Router, Side::Inside] {
            // Only IPv4 in the lab: no router solicitations in captures,
            // no address the censor does not see.
            self.in_ns(side, || {
                for key in ["all", "default"] {
                    let path = format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6");
                    std::fs::write(&path, "1").unwrap_or_else(|e| panic!("{path}: {e}"));
                }
            });
            run("ip", &["-n", &self.ns(side), "link", "set", "lo", "up"]);
        }
        let (ro, ri) = (self.veth(Side::Router, 'o'), self.veth(Side::Router, 'i'));
        let (oa, ia) = (self.veth(Side::Outside, 'a'), self.veth(Side::Inside, 'a'));
        // Both ends are made inside the lab's namespaces, never on the host.
        run(
            "ip",
            &[
                "-n", &r, "link", "add", &ro, "type", "veth", "peer", "name", &oa, "netns", &o,
            ],
        );
        run(
            "ip",
            &[
                "-n", &r, "link", "add", &ri, "type", "veth", "peer", "name", &ia, "netns", &i,
            ],
        );
        for (ns, dev, addr) in [
            (&o, &oa, format!("{OUTSIDE_IP}/24")),
            (&o, &oa, format!("{PROXY_IP}/24")),
            (&r, &ro, format!("{ROUTER_OUTSIDE_IP}/24")),
            (&r, &ri, format!("{ROUTER_INSIDE_IP}/24")),
            (&i, &ia, format!("{INSIDE_IP}/24")),
        ] {
            run("ip", &["-n", ns, "addr", "add", &addr, "dev", dev]);
        }
        for (ns, dev) in [(&o, &oa), (&r, &ro), (&r, &ri), (&i, &ia)] {
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        run(
            "ip",
            &[
                "-n",
                &o,
                "route",
                "add",
                "default",
                "via",
                &ROUTER_OUTSIDE_IP.to_string(),
            ],
        );
        run(
            "ip",
            &[
                "-n",
                &i,
                "route",
                "add",
                "default",
                "via",
                &ROUTER_INSIDE_IP.to_string(),
            ],
        );
        self.in_ns(Side::Router, || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("ip_forward on in ROUTER");
        });
    }

    /// The name of `side`'s namespace.
    pub fn ns(&self, side: Side) -> String {
        format!("{}{}", self.base, side.letter())
    }

    /// The common start of this lab's namespace names, `kk<pid>n<k>`.
    pub fn prefix(&self) -> &str {
        &self.base
    }

    /// The test this lab is for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lab's own folder (logs, captures); deleted with the lab.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A veth's name: `<base><letter of its namespace><end>`.
    fn veth(&self, side: Side, end: char) -> String {
        format!("{}{}{end}", self.base, side.letter())
    }

    /// The router's veth towards `side` (OUTSIDE or INSIDE).
    pub fn router_veth(&self, towards: Side) -> String {
        match towards {
            Side::Outside => self.veth(Side::Router, 'o'),
            Side::Inside => self.veth(Side::Router, 'i'),
            Side::Router => panic!("the router has no veth towards itself"),
        }
    }

    /// `ip netns exec <ns of side> program`: a command that runs in `side`
    /// and sees the `/etc/hosts` that [`Lab::hosts`] wrote for it.
    pub fn command(&self, side: Side, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(side)]).arg(program);
        c
    }

    /// Starts `cmd` in `side`: a plain command (program, arguments,
    /// environment, folder) is run there through `ip netns exec`, one made
    /// by [`Lab::command`] as it is. Standard input is closed; standard
    /// output and error go to a log in the lab's folder, printed when a
    /// failing test drops the lab ([`Lab::logs`]). Whatever is still
    /// running in the lab's namespaces is killed when the lab drops.
    pub fn spawn(&self, side: Side, cmd: Command) -> Child {
        let mut cmd = self.wrap(side, cmd);
        let label = format!("{side} {cmd:?}");
        let k = self.files.fetch_add(1, Ordering::Relaxed);
        let log = self.dir().join(format!("process-{k}.log"));
        let out = File::create(&log).expect("a log file in the lab folder");
        let err = out.try_clone().expect("the log file again");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label}: {e}"));
        self.logs.lock().unwrap().push((label, log));
        child
    }

    fn wrap(&self, side: Side, cmd: Command) -> Command {
        let ns = self.ns(side);
        let args: Vec<&std::ffi::OsStr> = cmd.get_args().collect();
        let made_here =
            cmd.get_program() == "ip" && args.len() >= 3 && args[0] == "netns" && args[1] == "exec";
        if made_here {
            assert_eq!(args[2], ns.as_str(), "a command made for another namespace");
            return cmd;
        }
        let mut c = self.command(side, cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c
    }

    /// What the processes started by [`Lab::spawn`] printed so far.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for (label, path) in self.logs.lock().unwrap().iter() {
            let body = std::fs::read_to_string(path).unwrap_or_default();
            let _ = writeln!(text, "---- {label}\n{body}");
        }
        text
    }

    /// Writes `/etc/netns/<ns>/hosts` (with localhost, then `entries`), so
    /// that these names resolve for programs run through [`Lab::command`]
    /// in `side` only (not for [`Lab::in_ns`] threads).
    pub fn hosts(&self, side: Side, entries: &[(&str, Ipv4Addr)]) {
        let dir = Path::new("/etc/netns").join(self.ns(side));
        std::fs::create_dir_all(&dir).expect("creating /etc/netns/<ns>");
        let mut text = String::from("127.0.0.1\tlocalhost\n");
        for (name, ip) in entries {
            let _ = writeln!(text, "{ip}\t{name}");
        }
        std::fs::write(dir.join("hosts"), text).expect("writing /etc/netns/<ns>/hosts");
    }

    /// Runs `f` on a new thread moved into `side`'s network namespace and
    /// returns what it returns (a panic in `f` is this call's panic).
    /// Sockets made there stay there: a listener bound in OUTSIDE may be
    /// moved out and served from any thread. Threads that `f` starts are
    /// in `side` too (they inherit the namespace of the thread that
    /// starts them).
    pub fn in_ns<T: Send>(&self, side: Side, f: impl FnOnce() -> T + Send) -> T {
        let ns = self.ns_file(side);
        std::thread::scope(|s| {
            let h = s.spawn(move || {
                enter(&ns, side);
                f()
            });
            match h.join() {
                Ok(t) => t,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Like [`Lab::in_ns`], without waiting: `f` runs on a thread of its
    /// own in `side`.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        side: Side,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let ns = self.ns_file(side);
        std::thread::spawn(move || {
            enter(&ns, side);
            f()
        })
    }

    fn ns_file(&self, side: Side) -> File {
        let path = Path::new("/var/run/netns").join(self.ns(side));
        File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Makes `censor` the router's censor, in one nftables transaction that
    /// replaces the one before.
    pub fn censor(&self, censor: &Censor) {
        self.nft(&censor.ruleset(&self.router_veth(Side::Outside)));
    }

    /// Takes the censor away: the router forwards everything.
    pub fn uncensor(&self) {
        self.censor(&Censor::new());
    }

    fn nft(&self, ruleset: &str) {
        let mut child = self
            .command(Side::Router, "nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ruleset.as_bytes())
            .expect("writing to nft");
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft refused the ruleset: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The router's current nftables ruleset, as `nft list ruleset` shows it.
    pub fn ruleset(&self) -> String {
        let out = self
            .command(Side::Router, "nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Shapes the link between the router and INSIDE, both ways (the
    /// router's veth towards the reader and the reader's own veth),
    /// replacing the shaping before. [`Shape::default`] takes it away.
    /// A delay is netem's where the kernel has `sch_netem`, else the TCP
    /// relay's ([`Shape::delay`]). Fails, saying so, where tc refuses.
    pub fn shape(&self, shape: &Shape) -> Result<(), String> {
        let netem = shape.delay.is_some() && self.has_netem();
        let ends = [
            (Side::Router, self.router_veth(Side::Inside)),
            (Side::Inside, self.veth(Side::Inside, 'a')),
        ];
        for (side, dev) in &ends {
            let ns = self.ns(*side);
            // No qdisc of ours yet is fine.
            let _ = Command::new("tc")
                .args(["-n", &ns, "qdisc", "del", "dev", dev, "root"])
                .stderr(Stdio::null())
                .status();
            let args: Vec<String> = match (shape.delay.filter(|_| netem), shape.rate_kbit) {
                (None, None) => continue,
                (Some(delay), rate) => {
                    let mut a = vec![
                        "netem".to_owned(),
                        "delay".into(),
                        format!("{}ms", delay.as_millis()),
                    ];
                    if let Some(r) = rate {
                        a.extend(["rate".into(), format!("{r}kbit")]);
                    }
                    a
                }
                (None, Some(r)) => {
                    // A bucket of a tenth of a second's bytes, at least a
                    // few full frames, and up to a second of queue.
                    let burst = (r as u64 * 1000 / 8 / 10).max(6 * 1514);
                    vec![
                        "tbf".into(),
                        "rate".into(),
                        format!("{r}kbit"),
                        "burst".into(),
                        burst.to_string(),
                        "latency".into(),
                        "1s".into(),
                    ]
                }
            };
            let out = Command::new("tc")
                .args(["-n", &ns, "qdisc", "add", "dev", dev, "root"])
                .args(&args)
                .output()
                .expect("tc");
            if !out.status.success() {
                return Err(format!(
                    "tc qdisc add dev {dev} root {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        match (shape.delay.filter(|_| !netem), shape.freeze_after) {
            (None, None) => self.stop_relay(),
            (delay, freeze) => self.start_relay(delay.unwrap_or_default(), freeze),
        }
        // Loss by nftables (numgen), in a table of its own beside the censor.
        let mut rules = String::from("table inet shape {}\ndelete table inet shape\n");
        if let Some(p) = shape.loss_percent.filter(|p| *p > 0) {
            assert!(p <= 100, "a loss of {p}%");
            let ri = self.router_veth(Side::Inside);
            let _ = write!(
                rules,
                "table inet shape {{\n  chain forward {{\n    type filter hook forward priority filter - 10; policy accept;\n    \
                 iifname \"{ri}\" numgen random mod 100 < {p} drop\n    \
                 oifname \"{ri}\" numgen random mod 100 < {p} drop\n  }}\n}}\n"
            );
        }
        self.nft(&rules);
        Ok(())
    }

    /// Whether this kernel has netem (`sch_netem`), tried once per process.
    pub fn has_netem(&self) -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            let ns = self.ns(Side::Router);
            let tc = |args: &[&str]| {
                Command::new("tc")
                    .args(["-n", &ns, "qdisc"])
                    .args(args)
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let has = tc(&["add", "dev", "lo", "root", "netem", "delay", "1ms"]);
            if has {
                tc(&["del", "dev", "lo", "root"]);
            }
            has
        })
    }

    /// Sends every TCP connection from INSIDE through a relay in ROUTER
    /// that holds each chunk `delay` before passing it on, each way
    /// (nft `redirect` to the relay, which finds the real destination with
    /// `SO_ORIGINAL_DST` and dials it from the router's address).
    /// With `freeze`, each connection's answer stops after that many bytes.
    fn start_relay(&self, delay: Duration, freeze: Option<u64>) {
        self.stop_relay();
        let listener = self.in_ns(Side::Router, || {
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, RELAY_PORT))
                .expect("the relay's port in ROUTER")
        });
        // The accept loop, and the threads it starts, run in ROUTER.
        let served = self.in_ns(Side::Router, || relay::serve(listener, delay, freeze));
        *self.relay.lock().unwrap() = Some(served);
        let ri = self.router_veth(Side::Inside);
        self.nft(&format!(
            "table ip relay {{}}\ndelete table ip relay\ntable ip relay {{\n  \
             chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
             iifname \"{ri}\" meta l4proto tcp redirect to :{RELAY_PORT}\n  }}\n}}\n"
        ));
    }

    fn stop_relay(&self) {
        self.nft("table ip relay {}\ndelete table ip relay\n");
        self.relay.lock().unwrap().take();
    }

    /// Starts tcpdump on the router's veth towards `towards` and waits
    /// until it captures.
    pub fn capture(&self, towards: Side) -> Capture {
        let dev = self.router_veth(towards);
        let k = self.files.fetch_add(1, Ordering::Relaxed);
        let file = self.dir().join(format!("capture-{k}-{towards}.pcap"));
        let mut child = self
            .command(Side::Router, "tcpdump")
            // -Z root: write the file as root, into the lab's root folder.
            .args([
                "-Z",
                "root",
                "-n",
                "-U",
                "--immediate-mode",
                "-s",
                "0",
                "-i",
                &dev,
                "-w",
            ])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcpdump");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads tcpdump's standard error to its end, so it never blocks.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let start = Instant::now();
        let mut said = String::new();
        loop {
            let left = LAB_DEADLINE.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => {
                    said.push_str(&line);
                    said.push('\n');
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tcpdump on {dev} did not start capturing: {said}");
                }
            }
        }
        Capture {
            child: Some(child),
            file,
            dev,
        }
    }

    /// Starts microsocks in `side` on `addr` (PROXY_IP:1080, say) and waits
    /// until it accepts connections. It is killed with the lab.
    pub fn socks(&self, side: Side, addr: SocketAddrV4) {
        let mut cmd = Command::new("microsocks");
        cmd.args(["-i", &addr.ip().to_string(), "-p", &addr.port().to_string()]);
        let child = self.spawn(side, cmd);
        self.children.lock().unwrap().push(child);
        self.in_ns(side, || {
            wait_for(&format!("microsocks on {addr}"), LAB_DEADLINE, || {
                TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1)).is_ok()
            })
        });
    }

    /// Runs kolokol in `side` on the data directory `data`, outside any
    /// newsroom folder the environment names.
    pub fn kolokol(&self, side: Side, data: &Path, args: &[&str]) -> Output {
        self.command(side, BIN)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env_remove("KOLOKOL_NEWSROOM")
            .output()
            .expect("running kolokol")
    }

    /// Like [`Lab::kolokol`], expecting success; returns standard output.
    pub fn kolokol_ok(&self, side: Side, data: &Path, args: &[&str]) -> String {
        let out = self.kolokol(side, data, args);
        assert!(
            out.status.success(),
            "kolokol {args:?} in {side}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kolokol prints UTF-8")
    }

    /// Starts `kolokol --data-dir data node --no-gateway args` in `side`
    /// and waits until it has written its `node.toml`.
    pub fn node(&self, side: Side, data: &Path, args: &[&str]) -> LabNode {
        let _ = std::fs::remove_file(data.join("node.toml"));
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(data)
            .args(["node", "--no-gateway"])
            .args(args);
        cmd.env_remove("KOLOKOL_NEWSROOM");
        let mut child = self.spawn(side, cmd);
        let start = Instant::now();
        while !data.join("node.toml").exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the node in {side} stopped ({status}) before writing node.toml:\n{}",
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < LAB_DEADLINE,
                "the node in {side} wrote no node.toml:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        LabNode {
            child,
            data: data.to_owned(),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "censor lab {} ({}) after a failure:\n{}",
                self.name,
                self.base,
                self.logs()
            );
            eprintln!("its ruleset:\n{}", self.ruleset());
        }
        for mut c in self.children.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        remove_lab(&self.base);
    }
}

/// A `kolokol node` started by [`Lab::node`]; killed when dropped.
pub struct LabNode {
    pub child: Child,
    data: PathBuf,
}

impl LabNode {
    /// The node's peer id, from its `node.toml`.
    pub fn peer_id(&self) -> String {
        let text = std::fs::read_to_string(self.data.join("node.toml")).expect("node.toml");
        let file: kolokol::node::control::NodeFile =
            toml::from_str(&text).expect("node.toml parses");
        file.peer_id
    }

    /// The addresses the node says it listens on (may be 0.0.0.0).
    pub fn listen(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.data.join("node.toml")).expect("node.toml");
        let file: kolokol::node::control::NodeFile =
            toml::from_str(&text).expect("node.toml parses");
        file.listen
    }

    /// `/ip4/<ip>/tcp/<port>/p2p/<peer id>`: where a peer dials it.
    pub fn tcp_addr(&self, ip: Ipv4Addr, port: u16) -> String {
        format!("/ip4/{ip}/tcp/{port}/p2p/{}", self.peer_id())
    }

    /// Sends SIGTERM and waits (with a deadline) for the node to stop.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("waiting on the node") {
                return s;
            }
            assert!(
                start.elapsed() < LAB_DEADLINE,
                "the node did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LabNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- namespaces ----

fn enter(ns: &File, side: Side) {
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap_or_else(|e| panic!("moving a thread into {side}: {e}"));
}

/// Kills what runs in `ns` and deletes it and its `/etc/netns` folder.
fn remove_ns(ns: &str) {
    let me = std::process::id();
    // A second pass for what the first one's victims started meanwhile.
    for _ in 0..2 {
        let Ok(out) = Command::new("ip")
            .args(["netns", "pids", ns])
            .stderr(Stdio::null())
            .output()
        else {
            break;
        };
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let Ok(pid) = pid.parse::<i32>() else {
                continue;
            };
            if pid as u32 == me {
                continue;
            }
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
}

/// A lab's own folder (logs, captures, its lock): `$TMPDIR/kolokol-lab-<base>`.
fn lab_dir(base: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kolokol-lab-{base}"))
}

/// Deletes what lab `base` made: kills what runs in its namespaces,
/// deletes them and their `/etc/netns` folders, and its own folder.
fn remove_lab(base: &str) {
    for side in [Side::Outside, Side::Router, Side::Inside] {
        remove_ns(&format!("{base}{}", side.letter()));
    }
    let _ = std::fs::remove_dir_all(lab_dir(base));
}

/// The lab base (`kk<pid>n<k>`) and process id of a lab namespace's name
/// `kk<pid>n<k><side>`.
fn lab_base(ns: &str) -> Option<(&str, u32)> {
    let rest = ns.strip_prefix(PREFIX)?;
    let (pid, rest) = rest.split_once('n')?;
    let (k, side) = rest.split_at(rest.len().checked_sub(1)?);
    let side_ok = matches!(side, "o" | "r" | "i");
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !side_ok || !digits(k) || !digits(pid) {
        return None;
    }
    Some((&ns[..ns.len() - 1], pid.parse().ok()?))
}

/// How long a lab may take to lock its file after making its folder.
const LOCK_GRACE: Duration = Duration::from_secs(10);

/// Whether lab `base`, of process `pid`, may be in use: its lock is held,
/// or its process lives and the folder is missing or new (a lab that is
/// being made). A lab of a dead process, or whose lock no one holds past
/// the grace, is not.
fn lab_in_use(base: &str, pid: u32) -> bool {
    let dir = lab_dir(base);
    if let Ok(lock) = File::open(dir.join("lock")) {
        // Got it: no one holds it (ours is released as `lock` drops).
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return true;
        }
    }
    // This process's own labs hold their locks from before they exist.
    let alive = pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists();
    let new = std::fs::metadata(&dir)
        .and_then(|m| m.modified())
        .map_or(true, |t| t.elapsed().unwrap_or_default() < LOCK_GRACE);
    alive && new
}

/// Deletes labs that no one uses any more: those of a run that was
/// killed, found by their namespaces, `/etc/netns` folders or own folders.
fn sweep_stale() {
    let mut names: Vec<String> = Vec::new();
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        names.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned)),
        );
    }
    if let Ok(dir) = std::fs::read_dir("/etc/netns") {
        names.extend(
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        names.extend(dir.flatten().filter_map(|e| {
            // A folder's name as the name of one of its namespaces.
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("kolokol-lab-").map(|b| format!("{b}r"))
        }));
    }
    let mut bases: Vec<(String, u32)> = names
        .iter()
        .filter_map(|n| lab_base(n).map(|(b, pid)| (b.to_owned(), pid)))
        .collect();
    bases.sort();
    bases.dedup();
    for (base, pid) in bases {
        if !lab_in_use(&base, pid) {
            eprintln!("censor lab: sweeping {base}, left by process {pid}");
            remove_lab(&base);
        }
    }
}

/// The lab namespaces that exist now whose names start with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(tool).is_file())
}

/// Runs a setup command, failing the test with what it said.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `cond` until it holds, failing after `deadline`.
pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port of the delay relay in ROUTER.
const RELAY_PORT: u16 = 40404;

mod capture;
mod censor;
pub mod probe;
mod relay;

pub use capture::*;
pub use censor::*;
