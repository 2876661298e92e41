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
        match shape.delay.filter(|_| !netem) {
            Some(delay) => self.start_relay(delay),
            None => self.stop_relay(),
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
    fn start_relay(&self, delay: Duration) {
        self.stop_relay();
        let listener = self.in_ns(Side::Router, || {
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, RELAY_PORT))
                .expect("the relay's port in ROUTER")
        });
        // The accept loop, and the threads it starts, run in ROUTER.
        let served = self.in_ns(Side::Router, || relay::serve(listener, delay));
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

// ---- the censor ----

/// The router's censor, built up rule by rule and applied with
/// [`Lab::censor`] as one nftables ruleset in the ROUTER's forward hook.
///
/// Drop rules apply first. Then, if any allow rule was given
/// ([`Censor::tls_only_on_443`], [`Censor::only_tcp_to`]), only what one
/// of them allows is forwarded and everything else is dropped.
#[derive(Clone, Debug, Default)]
pub struct Censor {
    block_ips: Vec<Ipv4Addr>,
    drop_udp: bool,
    drop_prefixes: Vec<Vec<u8>>,
    tls_only_443: bool,
    only_tcp_to: Vec<SocketAddrV4>,
}

/// The longest payload prefix a [`Censor`] matches on.
pub const MAX_PREFIX: usize = 64;

/// The bits nftables compares in one raw payload match.
const MATCH_BITS: usize = 128;

impl Censor {
    /// No censor: everything is forwarded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops, both ways, every TCP segment whose payload starts with
    /// `prefix` (1 to [`MAX_PREFIX`] bytes), e.g. `b"\x13/multistream/1.0.0\n"`,
    /// the first bytes of every libp2p TCP connection. A prefix split over
    /// two segments is not seen, as by a censor that does not reassemble.
    pub fn drop_payload_prefix(mut self, prefix: &[u8]) -> Self {
        assert!(
            (1..=MAX_PREFIX).contains(&prefix.len()),
            "a prefix of {} bytes (1..={MAX_PREFIX})",
            prefix.len()
        );
        self.drop_prefixes.push(prefix.to_vec());
        self
    }

    /// Drops all UDP (QUIC with it).
    pub fn drop_udp(mut self) -> Self {
        self.drop_udp = true;
        self
    }

    /// Allows TCP to port 443 whose first payload byte from the client is
    /// 0x16 (a TLS handshake record): the flow's first data packet marks it
    /// (conntrack mark 1 for TLS, 2 for anything else) and a flow marked 2
    /// is dropped both ways from that packet on. Server data before the
    /// client's is dropped too.
    pub fn tls_only_on_443(mut self) -> Self {
        self.tls_only_443 = true;
        self
    }

    /// Allows TCP to `addr` (a proxy, say) and its answers.
    pub fn only_tcp_to(mut self, addr: SocketAddrV4) -> Self {
        self.only_tcp_to.push(addr);
        self
    }

    /// Drops everything to and from `ip`.
    pub fn block_ip(mut self, ip: Ipv4Addr) -> Self {
        self.block_ips.push(ip);
        self
    }

    /// The ruleset for `nft -f -`: it replaces the table `inet censor`.
    /// The rules see what the router forwards, and what the router's own
    /// sockets (the delay relay's, say) exchange over `towards_outside`,
    /// its veth towards OUTSIDE.
    pub fn ruleset(&self, towards_outside: &str) -> String {
        let mut f = String::new();
        let allow_list = self.tls_only_443 || !self.only_tcp_to.is_empty();
        let mut r = |line: String| {
            f.push_str("    ");
            f.push_str(&line);
            f.push('\n');
        };
        for ip in &self.block_ips {
            r(format!("ip saddr {ip} drop"));
            r(format!("ip daddr {ip} drop"));
        }
        if self.drop_udp {
            r("meta l4proto udp drop".into());
        }
        for prefix in &self.drop_prefixes {
            r(format!("meta l4proto tcp {} drop", payload_match(prefix)));
        }
        if self.tls_only_443 {
            r("meta l4proto tcp ct original proto-dst 443 jump tls_first".into());
        }
        for a in &self.only_tcp_to {
            r(format!(
                "meta l4proto tcp ct original ip daddr {} ct original proto-dst {} accept",
                a.ip(),
                a.port()
            ));
        }
        if allow_list {
            r("drop".into());
        }
        let mut text =
            String::from("table inet censor {}\ndelete table inet censor\ntable inet censor {\n");
        if self.tls_only_443 {
            text.push_str(
                "  chain tls_first {\n    \
                 ct mark 2 drop\n    \
                 ct mark 0 ct direction original @ih,0,8 0x16 ct mark set 1\n    \
                 ct mark 0 ct direction original @ih,0,8 != 0x16 ct mark set 2 drop\n    \
                 ct mark 0 ct direction reply @ih,0,8 & 0x00 == 0x00 drop\n    \
                 accept\n  }\n",
            );
        }
        text.push_str("  chain rules {\n");
        text.push_str(&f);
        let _ = write!(
            text,
            "  }}\n  \
             chain forward {{\n    type filter hook forward priority filter; policy accept;\n    \
             jump rules\n  }}\n  \
             chain input {{\n    type filter hook input priority filter; policy accept;\n    \
             iifname \"{towards_outside}\" jump rules\n  }}\n  \
             chain output {{\n    type filter hook output priority filter; policy accept;\n    \
             oifname \"{towards_outside}\" jump rules\n  }}\n}}\n"
        );
        text
    }
}

/// `@ih,0,128 0x... @ih,128,N 0x...`: the payload starts with `prefix`,
/// in matches of at most [`MATCH_BITS`] bits each.
fn payload_match(prefix: &[u8]) -> String {
    prefix
        .chunks(MATCH_BITS / 8)
        .enumerate()
        .map(|(i, chunk)| {
            format!(
                "@ih,{},{} 0x{}",
                i * MATCH_BITS,
                chunk.len() * 8,
                hex::encode(chunk)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A shaping of the link between the router and INSIDE ([`Lab::shape`]),
/// each way. The default shapes nothing.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    /// Added each way: to every packet by netem where the kernel has
    /// it; else to every chunk of every TCP connection from INSIDE by a
    /// relay in ROUTER (UDP is then not delayed, a connection opens at
    /// once, even to a blocked host, and the mirror sees it come from the
    /// router's 198.18.1.1). [`Lab::has_netem`] says which.
    pub delay: Option<Duration>,
    /// Each way, in kbit/s (tbf; netem's rate when there is a delay).
    pub rate_kbit: Option<u32>,
    /// Packets dropped at random, each way, in percent (nft numgen).
    pub loss_percent: Option<u8>,
}

// ---- captures ----

/// tcpdump running on one of the router's veths ([`Lab::capture`]).
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    dev: String,
}

impl Capture {
    /// The TCP flows captured so far.
    pub fn flows(&self) -> Vec<Flow> {
        let bytes = std::fs::read(&self.file).unwrap_or_default();
        parse_pcap(&bytes).unwrap_or_else(|e| panic!("the capture on {}: {e}", self.dev))
    }

    /// Waits (up to [`LAB_DEADLINE`]) until `cond` holds for the flows
    /// captured so far, and returns them.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut(&[Flow]) -> bool) -> Vec<Flow> {
        let start = Instant::now();
        loop {
            let flows = self.flows();
            if cond(&flows) {
                return flows;
            }
            assert!(
                start.elapsed() < LAB_DEADLINE,
                "timed out waiting for {what} in the capture on {}: {flows:#?}",
                self.dev
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops tcpdump and returns every TCP flow it captured.
    pub fn stop(mut self) -> Vec<Flow> {
        self.end();
        self.flows()
    }

    /// The pcap file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn end(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > LAB_DEADLINE {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.end();
    }
}

/// One TCP flow of a capture, its payload reassembled each way.
#[derive(Clone, PartialEq, Eq)]
pub struct Flow {
    /// Who opened it (sent the SYN; without one, who sent first).
    pub client: SocketAddrV4,
    pub server: SocketAddrV4,
    /// The client's bytes, in sequence order, retransmissions once.
    pub to_server: Vec<u8>,
    /// The server's bytes.
    pub to_client: Vec<u8>,
    /// Packets of the flow either way.
    pub packets: usize,
    /// The client's SYN was captured (so `to_server` starts at byte 0).
    pub syn: bool,
    /// A byte range is missing: the streams stop before the first hole.
    pub holes: bool,
    /// The client sent a FIN or a RST.
    pub client_closed: bool,
    /// The server sent a FIN or a RST.
    pub server_closed: bool,
}

impl Flow {
    /// Both sides closed: the capture holds the whole flow.
    pub fn closed(&self) -> bool {
        self.client_closed && self.server_closed
    }
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = |b: &[u8]| {
            let n = b.len().min(24);
            format!(
                "{} bytes, {:?}...",
                b.len(),
                String::from_utf8_lossy(&b[..n])
            )
        };
        f.debug_struct("Flow")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("to_server", &head(&self.to_server))
            .field("to_client", &head(&self.to_client))
            .field("packets", &self.packets)
            .field("syn", &self.syn)
            .field("holes", &self.holes)
            .field("client_closed", &self.client_closed)
            .field("server_closed", &self.server_closed)
            .finish()
    }
}

/// One direction of a flow while it is read: segments by offset from the
/// first sequence number.
#[derive(Default)]
struct Stream {
    start: Option<u32>,
    segments: BTreeMap<u32, Vec<u8>>,
}

impl Stream {
    fn add(&mut self, seq: u32, syn: bool, payload: &[u8]) {
        // Data starts after the SYN's sequence number; without a SYN, at
        // the first segment seen.
        let first = seq.wrapping_add(syn as u32);
        if syn {
            self.start = Some(first);
        }
        let start = *self.start.get_or_insert(first);
        if payload.is_empty() {
            return;
        }
        let offset = first.wrapping_sub(start);
        if offset > u32::MAX / 2 {
            // Before the start: data we cannot place.
            return;
        }
        let slot = self.segments.entry(offset).or_default();
        if payload.len() > slot.len() {
            *slot = payload.to_vec();
        }
    }

    /// The bytes from the start up to the first hole, and whether there is
    /// a hole.
    fn assemble(&self) -> (Vec<u8>, bool) {
        let mut out: Vec<u8> = Vec::new();
        for (&offset, bytes) in &self.segments {
            let offset = offset as usize;
            if offset > out.len() {
                return (out, true);
            }
            let end = offset + bytes.len();
            if end > out.len() {
                out.extend_from_slice(&bytes[out.len() - offset..]);
            }
        }
        (out, false)
    }
}

/// Parses a pcap file (classic format, microsecond or nanosecond, either
/// byte order, Ethernet) and reassembles its IPv4 TCP flows, in the order
/// they first appear. A record cut off at the end (a capture still being
/// written) is left out.
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<Flow>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < 24 {
        return Err(format!("a pcap global header of {} bytes", bytes.len()));
    }
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(format!("not a pcap file: magic {}", hex::encode(magic))),
    };
    let u32_at = |b: &[u8], at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let link = u32_at(bytes, 20) & 0x0fff_ffff;
    if link != 1 {
        return Err(format!("link type {link}, not Ethernet (1)"));
    }
    let mut flows: Vec<(Flow, Stream, Stream)> = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(bytes, at + 8) as usize;
        let Some(frame) = bytes.get(at + 16..at + 16 + incl) else {
            break;
        };
        at += 16 + incl;
        let Some(seg) = tcp_segment(frame) else {
            continue;
        };
        let i = match flows.iter().position(|(f, _, _)| {
            (f.client, f.server) == (seg.src, seg.dst) || (f.client, f.server) == (seg.dst, seg.src)
        }) {
            Some(i) => i,
            None => {
                // The SYN's sender is the client; a flow seen first from
                // its SYN-ACK is the other way round.
                let (client, server) = if seg.syn && seg.ack {
                    (seg.dst, seg.src)
                } else {
                    (seg.src, seg.dst)
                };
                let flow = Flow {
                    client,
                    server,
                    to_server: Vec::new(),
                    to_client: Vec::new(),
                    packets: 0,
                    syn: false,
                    holes: false,
                    client_closed: false,
                    server_closed: false,
                };
                flows.push((flow, Stream::default(), Stream::default()));
                flows.len() - 1
            }
        };
        let (flow, up, down) = &mut flows[i];
        flow.packets += 1;
        if seg.src == flow.client {
            flow.syn |= seg.syn;
            flow.client_closed |= seg.fin_or_rst;
            up.add(seg.seq, seg.syn, seg.payload);
        } else {
            flow.server_closed |= seg.fin_or_rst;
            down.add(seg.seq, seg.syn, seg.payload);
        }
    }
    Ok(flows
        .into_iter()
        .map(|(mut flow, up, down)| {
            let (a, ha) = up.assemble();
            let (b, hb) = down.assemble();
            flow.to_server = a;
            flow.to_client = b;
            flow.holes = ha || hb;
            flow
        })
        .collect())
}

struct Segment<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    syn: bool,
    ack: bool,
    fin_or_rst: bool,
    payload: &'a [u8],
}

/// An Ethernet frame's IPv4 TCP segment, if it is one (and not a
/// fragment).
fn tcp_segment(frame: &[u8]) -> Option<Segment<'_>> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = (*ip.first()? & 0x0f) as usize * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || *ip.get(9)? != 6 {
        return None;
    }
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    if fragment != 0 {
        return None;
    }
    // The IP length, not the frame's: Ethernet pads short frames.
    let ip = ip.get(..total)?;
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    let tcp = ip.get(ihl..)?;
    let off = (*tcp.get(12)? >> 4) as usize * 4;
    let flags = *tcp.get(13)?;
    Some(Segment {
        src: SocketAddrV4::new(addr(12), u16::from_be_bytes([tcp[0], tcp[1]])),
        dst: SocketAddrV4::new(addr(16), u16::from_be_bytes([tcp[2], tcp[3]])),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        syn: flags & 0x02 != 0,
        ack: flags & 0x10 != 0,
        fin_or_rst: flags & 0x05 != 0,
        payload: tcp.get(off..)?,
    })
}

/// The largest TLS record body: 2^14 bytes plus the 2048 that a
/// ciphertext may add.
pub const MAX_TLS_RECORD: usize = (1 << 14) + 2048;

/// Checks that `bytes` is nothing but TLS records from byte 0 (content
/// type 20..=23, version 3.1 to 3.4, a length of at most
/// [`MAX_TLS_RECORD`]); the last record may be cut off where a capture
/// ends. Returns how many records (the cut one counted), or where and why
/// the stream is not TLS.
pub fn tls_records(bytes: &[u8]) -> Result<usize, String> {
    let mut at = 0;
    let mut n = 0;
    while at < bytes.len() {
        let head = &bytes[at..bytes.len().min(at + 5)];
        if let Some(&t) = head.first()
            && !(20..=23).contains(&t)
        {
            return Err(format!(
                "byte {at}: content type {t:#04x} is not a TLS record's (20..=23)"
            ));
        }
        if head.len() >= 3 && (head[1] != 3 || !(1..=4).contains(&head[2])) {
            return Err(format!(
                "byte {at}: version {:#04x}{:02x} is not TLS 1.0 to 1.3 (0x0301..=0x0304)",
                head[1], head[2]
            ));
        }
        n += 1;
        if head.len() < 5 {
            break;
        }
        let len = u16::from_be_bytes([head[3], head[4]]) as usize;
        if len > MAX_TLS_RECORD {
            return Err(format!(
                "byte {at}: a record of {len} bytes, over {MAX_TLS_RECORD}"
            ));
        }
        at += 5 + len;
    }
    Ok(n)
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

// ---- the delay relay ----

/// The port of the delay relay in ROUTER.
const RELAY_PORT: u16 = 40404;

/// A TCP relay in ROUTER for what the kernel cannot do to a flow itself
/// (delay where there is no netem; the place for "freeze a flow after N
/// bytes" and the like).
mod relay {
    use super::*;

    /// Chunks a direction may hold while they wait out the delay.
    const QUEUE: usize = 64;

    /// Relays every connection to `listener` (redirected here by nft) to
    /// its original destination, holding each chunk `delay` each way.
    /// Call it on a thread in ROUTER: the threads it starts stay there.
    pub(super) fn serve(listener: TcpListener, delay: Duration) -> probe::Served {
        probe::serve(listener, move |client| {
            let Ok(to) = rustix::net::sockopt::ip_original_dst(&client) else {
                return;
            };
            let Ok(server) = TcpStream::connect_timeout(&to.into(), LAB_DEADLINE) else {
                return;
            };
            // Long-lived connections (libp2p's) may idle: no timeouts here.
            for s in [&client, &server] {
                let _ = s.set_read_timeout(None);
                let _ = s.set_write_timeout(None);
                let _ = s.set_nodelay(true);
            }
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let up = std::thread::spawn(move || pump(client, server, delay));
            pump(s2, c2, delay);
            let _ = up.join();
        })
    }

    /// Copies `from` to `to`, each chunk `delay` after it was read, then
    /// passes the end on.
    fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
        let (tx, rx) = mpsc::sync_channel::<(Instant, Option<Vec<u8>>)>(QUEUE);
        let writer = std::thread::spawn(move || {
            for (due, chunk) in rx {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let Some(bytes) = chunk else { break };
                if to.write_all(&bytes).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, Some(buf[..n].to_vec())))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = tx.send((Instant::now() + delay, None));
        drop(tx);
        let _ = writer.join();
        let _ = from.shutdown(Shutdown::Read);
    }
}

// ---- probes, to run in a namespace ----

/// Small clients and servers for [`Lab::in_ns`] and [`Lab::spawn_in`]:
/// a server's socket is bound in the namespace, then served from any
/// thread.
pub mod probe {
    use super::*;

    /// How long a served connection may sit idle before it is closed.
    const IDLE: Duration = Duration::from_secs(30);

    /// A server's accept loop on its own thread; stopped when dropped.
    pub struct Served {
        pub addr: SocketAddr,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for Served {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Serves every connection to `listener` with `handle`, each on a
    /// thread of its own, until dropped.
    pub fn serve(
        listener: TcpListener,
        handle: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> Served {
        let addr = listener.local_addr().expect("a bound listener");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(IDLE));
                            let _ = s.set_write_timeout(Some(IDLE));
                            let handle = handle.clone();
                            std::thread::spawn(move || handle(s));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Served {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Echoes what each connection sends until it shuts down its side.
    pub fn echo(listener: TcpListener) -> Served {
        serve(listener, |mut s| {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = s.shutdown(Shutdown::Write);
        })
    }

    /// Sends `bytes` to each connection, reads until it shuts down its
    /// side, and closes.
    pub fn send_then_drain(listener: TcpListener, bytes: Vec<u8>) -> Served {
        serve(listener, move |mut s| {
            let _ = s.write_all(&bytes);
            let _ = io::copy(&mut s, &mut io::sink());
            let _ = s.shutdown(Shutdown::Write);
        })
    }

    /// Connects to `addr`, sends `bytes`, shuts down its side and reads
    /// until the server closes or `wait` has passed; returns what came back
    /// (less than was expected when a censor held it).
    pub fn tcp_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
        let start = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, wait)?;
        s.write_all(bytes)?;
        s.shutdown(Shutdown::Write)?;
        read_until_closed(&mut s, start + wait)
    }

    /// Whether a TCP connection to `addr` opens within `wait`.
    pub fn connects(addr: SocketAddr, wait: Duration) -> bool {
        TcpStream::connect_timeout(&addr, wait).is_ok()
    }

    /// Reads until the peer closes, an error, or `deadline`; returns what
    /// was read.
    pub fn read_until_closed(s: &mut impl ReadTimeout, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(out);
            }
            s.set_timeout(left)?;
            match s.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(out);
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// A stream whose reads can time out.
    pub trait ReadTimeout: Read {
        fn set_timeout(&mut self, t: Duration) -> io::Result<()>;
    }

    impl ReadTimeout for TcpStream {
        fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
            self.set_read_timeout(Some(t))
        }
    }

    impl ReadTimeout for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
            self.sock.set_read_timeout(Some(t))
        }
    }

    /// Echoes every UDP datagram to `socket` back to its sender until
    /// dropped.
    pub fn udp_echo(socket: UdpSocket) -> Served {
        let addr = socket.local_addr().expect("a bound socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(&buf[..n], from);
                    }
                }
            })
        };
        Served {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// How many datagrams [`udp_echoes`] has in flight at once: few
    /// enough for the echo's receive buffer.
    const UDP_BATCH: usize = 20;

    /// Sends `count` datagrams (`bytes` and a number) to `to` (an echo)
    /// from a socket bound here, in batches of [`UDP_BATCH`], and counts
    /// the datagrams that come back; each batch waits up to `wait` for its
    /// answers.
    pub fn udp_echoes(to: SocketAddr, bytes: &[u8], count: usize, wait: Duration) -> usize {
        udp_echoes_from(Ipv4Addr::UNSPECIFIED, to, bytes, count, wait)
    }

    /// Like [`udp_echoes`], from a socket bound to `from`.
    pub fn udp_echoes_from(
        from: Ipv4Addr,
        to: SocketAddr,
        bytes: &[u8],
        count: usize,
        wait: Duration,
    ) -> usize {
        let s = UdpSocket::bind(SocketAddrV4::new(from, 0)).expect("a UDP socket");
        s.connect(to).expect("a UDP destination");
        let mut answered = vec![false; count];
        let mut buf = [0u8; 2048];
        for batch in (0..count).collect::<Vec<_>>().chunks(UDP_BATCH) {
            for &i in batch {
                let mut d = bytes.to_vec();
                d.extend_from_slice(&(i as u32).to_be_bytes());
                let _ = s.send(&d);
            }
            let deadline = Instant::now() + wait;
            while !batch.iter().all(|&i| answered[i]) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s.set_read_timeout(Some(left)).expect("a read timeout");
                match s.recv(&mut buf) {
                    Ok(n) if n == bytes.len() + 4 && buf[..bytes.len()] == *bytes => {
                        let tail = [buf[n - 4], buf[n - 3], buf[n - 2], buf[n - 1]];
                        if let Some(a) = answered.get_mut(u32::from_be_bytes(tail) as usize) {
                            *a = true;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        answered.iter().filter(|a| **a).count()
    }

    /// The crypto this module's TLS uses (kolokol's dependencies build
    /// rustls with two providers, so none is chosen by default).
    pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A self-signed certificate for `names`, and its key.
    pub fn self_signed(
        names: &[&str],
    ) -> (
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let ck = rcgen::generate_simple_self_signed(names).expect("a self-signed certificate");
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
        (ck.cert.der().clone(), key.into())
    }

    /// An HTTPS server on `listener` with a self-signed certificate for
    /// `mirror.lab`: every request is answered `200 OK` with `body`, then
    /// the connection closes.
    pub fn tls_server(listener: TcpListener, body: Vec<u8>) -> Served {
        let (cert, key) = self_signed(&["mirror.lab"]);
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("a server certificate");
        let config = Arc::new(config);
        serve(listener, move |s| {
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let mut reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            reply.extend_from_slice(&body);
            let _ = tls.write_all(&reply);
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tls.sock.shutdown(Shutdown::Write);
        })
    }

    /// Accepts any certificate, checking only that the handshake is signed
    /// by its key: a probe, not a client to trust.
    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

    impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &rustls::pki_types::CertificateDer<'_>,
            _intermediates: &[rustls::pki_types::CertificateDer<'_>],
            _server_name: &rustls::pki_types::ServerName<'_>,
            _ocsp_response: &[u8],
            _now: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// A TLS client that accepts any certificate.
    pub fn tls_client_config() -> Arc<rustls::ClientConfig> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth();
        Arc::new(config)
    }

    /// `GET path` over TLS to `addr` with SNI and Host `host`, accepting any
    /// certificate; returns the response head and body, or what failed.
    pub fn tls_get(
        addr: SocketAddr,
        host: &str,
        path: &str,
        wait: Duration,
    ) -> Result<(String, Vec<u8>), String> {
        let start = Instant::now();
        let s = TcpStream::connect_timeout(&addr, wait)
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
        let name =
            rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(tls_client_config(), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, s);
        let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        tls.write_all(request.as_bytes())
            .map_err(|e| format!("the TLS handshake or request to {addr}: {e}"))?;
        let reply = read_until_closed(&mut tls, start + wait)
            .map_err(|e| format!("reading from {addr}: {e}"))?;
        let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Err(format!(
                "no response head from {addr} within {wait:?} ({} bytes came)",
                reply.len()
            ));
        };
        let head = String::from_utf8_lossy(&reply[..end]).into_owned();
        Ok((head, reply[end + 4..].to_vec()))
    }

    /// Opens a TCP connection to `target` through the SOCKS5 proxy at
    /// `proxy` (no authentication).
    pub fn socks5_connect(
        proxy: SocketAddr,
        target: SocketAddrV4,
        wait: Duration,
    ) -> io::Result<TcpStream> {
        let mut s = TcpStream::connect_timeout(&proxy, wait)?;
        s.set_read_timeout(Some(wait))?;
        s.write_all(&[5, 1, 0])?;
        let mut choice = [0u8; 2];
        s.read_exact(&mut choice)?;
        if choice != [5, 0] {
            return Err(io::Error::other(format!("the proxy chose {choice:?}")));
        }
        let mut req = vec![5, 1, 0, 1];
        req.extend_from_slice(&target.ip().octets());
        req.extend_from_slice(&target.port().to_be_bytes());
        s.write_all(&req)?;
        let mut reply = [0u8; 10];
        s.read_exact(&mut reply)?;
        if reply[1] != 0 {
            return Err(io::Error::other(format!(
                "the proxy refused: reply code {}",
                reply[1]
            )));
        }
        Ok(s)
    }
}
