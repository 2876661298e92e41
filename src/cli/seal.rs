//! `kolokol seal`, `unseal` and `wipe`, and the opening of the data
//! directory every other command goes through.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::Args;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::newsroom::keyfile::{KdfParams, MIN_PASSPHRASE_CHARS};
use crate::seal::{DataDir, SealError};

/// The environment variable a script gives the passphrase in.
const PASSPHRASE_ENV: &str = "KOLOKOL_PASSPHRASE";
/// The environment variable naming a file descriptor to read it from.
pub(crate) const PASSPHRASE_FD_ENV: &str = "KOLOKOL_PASSPHRASE_FD";
/// Hidden: Argon2id cost of a new wrapped key (tests only; see newsroom).
const KDF_COST_ENV: &str = "KOLOKOL_KDF_COST";
/// The environment variable a script gives a duress passphrase in.
const DURESS_ENV: &str = "KOLOKOL_DURESS_PASSPHRASE";

/// The data directory opened once per command: the passphrase is asked
/// (and Argon2id run) once, however many parts the command reads.
static OPENED: Mutex<Option<DataDir>> = Mutex::new(None);
/// A passphrase read from a descriptor, which can be read only once.
static FROM_FD: Mutex<Option<Zeroizing<String>>> = Mutex::new(None);

#[derive(Debug, Default, Args)]
pub(super) struct SealArgs {
    /// Also set a duress passphrase: typed at the prompt or the lock page
    /// instead of the real one, it wipes the data directory (asked, or
    /// from KOLOKOL_DURESS_PASSPHRASE).
    #[arg(long)]
    duress: bool,
    /// On a sealed directory: wrap its key under a new passphrase.
    #[arg(long)]
    new_passphrase: bool,
}

#[derive(Debug, Args)]
pub(super) struct WipeArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

fn from_fd(fd: &str) -> Result<Zeroizing<String>, SealError> {
    let mut cached = FROM_FD.lock().map_err(|_| SealError::NoPassphrase)?;
    if let Some(p) = cached.as_ref() {
        return Ok(p.clone());
    }
    let n: u32 = fd.trim().parse().map_err(|_| {
        SealError::Passphrase(format!("{PASSPHRASE_FD_ENV}={fd:?} is not a number"))
    })?;
    let path = PathBuf::from(format!("/proc/self/fd/{n}"));
    let bytes = crate::files::read_bounded_secret(&path, 4096)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| SealError::Passphrase("the passphrase is not UTF-8".into()))?;
    let p = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    *cached = Some(p.clone());
    Ok(p)
}

/// The passphrase of a sealed directory: from the environment, a file
/// descriptor, or asked on the terminal.
pub(crate) fn passphrase(prompt: &str) -> Result<Zeroizing<String>, SealError> {
    if let Some(p) = std::env::var_os(PASSPHRASE_ENV) {
        return p
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| SealError::Passphrase(format!("{PASSPHRASE_ENV} is not UTF-8")));
    }
    if let Ok(fd) = std::env::var(PASSPHRASE_FD_ENV) {
        return from_fd(&fd);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| SealError::Passphrase(e.to_string()));
    }
    Err(SealError::NoPassphrase)
}

/// A new passphrase: long enough, and typed twice on a terminal.
fn new_passphrase(what: &str, env: &str) -> Result<Zeroizing<String>> {
    let p = match std::env::var_os(env) {
        Some(p) => Zeroizing::new(
            p.into_string()
                .map_err(|_| anyhow::anyhow!("{env} is not UTF-8"))?,
        ),
        None if env == PASSPHRASE_ENV && std::env::var_os(PASSPHRASE_FD_ENV).is_some() => {
            passphrase("")?
        }
        None if std::io::stdin().is_terminal() => {
            let first = Zeroizing::new(rpassword::prompt_password(format!("{what}: "))?);
            let again = Zeroizing::new(rpassword::prompt_password("the same again: ")?);
            if *first != *again {
                bail!("the two passphrases differ; nothing was changed");
            }
            first
        }
        None => bail!("{what}: set {env} or run the command in a terminal"),
    };
    if p.chars().count() < MIN_PASSPHRASE_CHARS {
        bail!("a passphrase needs at least {MIN_PASSPHRASE_CHARS} characters");
    }
    Ok(p)
}

fn kdf() -> Result<KdfParams> {
    match std::env::var(KDF_COST_ENV) {
        Ok(text) => Ok(KdfParams::parse(&text).context(KDF_COST_ENV)?),
        Err(_) => Ok(KdfParams::default()),
    }
}

/// Opens the data directory, unlocking it when it is sealed.
pub(crate) fn open_dir(data: &Path) -> Result<DataDir> {
    let mut opened = OPENED
        .lock()
        .map_err(|_| anyhow::anyhow!("the data directory's cache was poisoned"))?;
    if let Some(d) = opened.as_ref().filter(|d| d.root() == data) {
        return Ok(d.clone());
    }
    let prompt = format!("passphrase for {}: ", data.display());
    let dir = DataDir::open(data, &|| passphrase(&prompt))?;
    *opened = Some(dir.clone());
    Ok(dir)
}

/// Opens the data directory for a node, which may lock it again later:
/// nothing of it (the opened key, a passphrase read from a descriptor) is
/// kept anywhere but in what the node holds.
pub(crate) fn open_for_node(data: &Path) -> Result<DataDir, SealError> {
    let prompt = format!("passphrase for {}: ", data.display());
    let opened = DataDir::open(data, &|| passphrase(&prompt));
    if let Ok(mut cached) = FROM_FD.lock() {
        *cached = None;
    }
    opened
}

/// Locks the node running on the directory: it stops everything but its
/// gateway, which asks for the passphrase again.
pub(super) fn lock(data: &Path) -> Result<ExitCode> {
    if !DataDir::is_sealed(data) {
        bail!(
            "{} is not sealed: there is nothing to lock (kolokol seal encrypts it)",
            data.display()
        );
    }
    let Some(client) = crate::node::control::ControlClient::for_data_dir(data) else {
        if let Some(locked) = crate::node::vault::LockedFile::read(data) {
            bail!(
                "the node on {} is locked already (its lock page: http://{}/)",
                data.display(),
                locked.gateway
            );
        }
        bail!("no unlocked node runs on {}", data.display());
    };
    client.lock()?;
    // The node says it is locked by its node.toml, once it let go of the
    // store and the key.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let locked = loop {
        if let Some(l) = crate::node::vault::LockedFile::read(data) {
            break l;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the node on {} was asked to lock but did not say it did; see its log",
                data.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if locked.key_held {
        println!(
            "locked the node on {}: its network, control API and web tasks are stopped and its \
             store closed, but a request still in progress holds the data key in memory",
            data.display()
        );
    } else {
        println!(
            "locked the node on {}: its network, control API and web tasks are stopped, its \
             store and data key let go of",
            data.display()
        );
    }
    println!("unlock it at http://{}/", locked.gateway);
    Ok(ExitCode::SUCCESS)
}

/// Forgets the opened directory (after it was converted).
fn forget_opened() {
    if let Ok(mut o) = OPENED.lock() {
        *o = None;
    }
}

/// Seals the directory in place, or gives a sealed one a new passphrase.
pub(super) fn seal(args: SealArgs, data: &Path) -> Result<ExitCode> {
    forget_opened();
    if DataDir::is_sealed(data) {
        if !args.new_passphrase && !args.duress {
            bail!(
                "{} is sealed already (--new-passphrase or --duress change its key's wrapping)",
                data.display()
            );
        }
        let old = passphrase(&format!("current passphrase for {}: ", data.display()))?;
        let new = if args.new_passphrase {
            new_passphrase("new passphrase", "KOLOKOL_NEW_PASSPHRASE")?
        } else {
            old.clone()
        };
        let duress = match args.duress {
            true => Some(new_passphrase("duress passphrase", DURESS_ENV)?),
            false => None,
        };
        crate::seal::convert::rewrap(
            data,
            old.as_bytes(),
            new.as_bytes(),
            duress.as_ref().map(|d| d.as_bytes()),
            kdf()?,
        )?;
        println!("the data key of {} is wrapped anew", data.display());
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(data)?;
    let pass = new_passphrase("new passphrase for the data directory", PASSPHRASE_ENV)?;
    let duress = match args.duress {
        true => Some(new_passphrase("duress passphrase", DURESS_ENV)?),
        false => None,
    };
    if duress.as_ref().is_some_and(|d| **d == *pass) {
        bail!("the duress passphrase must differ from the passphrase");
    }
    let done = crate::seal::seal(
        data,
        pass.as_bytes(),
        duress.as_ref().map(|d| d.as_bytes()),
        kdf()?,
        &config.store,
    )
    .map_err(store_in_use)?;
    println!(
        "sealed {}: {} store entries, {} blob files, {} publishers",
        data.display(),
        done.entries,
        done.files,
        done.publishers
    );
    Ok(ExitCode::SUCCESS)
}

/// Turns a store in use into the advice to stop the node.
fn store_in_use(e: SealError) -> anyhow::Error {
    match e {
        SealError::Store(crate::store::StoreError::Locked(p)) => anyhow::anyhow!(
            "the store at {} is in use (a running node?); stop the node first, nothing was changed",
            p.display()
        ),
        other => other.into(),
    }
}

/// Turns a sealed directory back into a plain one.
pub(super) fn unseal(data: &Path) -> Result<ExitCode> {
    forget_opened();
    if !DataDir::is_sealed(data) {
        bail!("{} is not sealed", data.display());
    }
    let config = Config::load(data)?;
    let pass = passphrase(&format!("passphrase for {}: ", data.display()))?;
    let done = crate::seal::unseal(data, pass.as_bytes(), &config.store).map_err(store_in_use)?;
    println!(
        "unsealed {}: {} store entries, {} blob files, {} publishers; everything is plain text now",
        data.display(),
        done.entries,
        done.files,
        done.publishers
    );
    Ok(ExitCode::SUCCESS)
}

/// Destroys the data directory: its key first, then the rest.
pub(super) fn wipe(args: WipeArgs, data: &Path) -> Result<ExitCode> {
    forget_opened();
    if !data.exists() {
        bail!("{} does not exist", data.display());
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "kolokol wipe destroys {}: pass --yes to confirm",
                data.display()
            );
        }
        eprint!(
            "destroy everything Kolokol keeps in {}? type yes: ",
            data.display()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("not wiped");
        }
    }
    // A running node is told to stop at once; the key goes first either
    // way, so the store is unreadable even if the node does not answer.
    let client = crate::node::control::ControlClient::for_data_dir(data);
    let destroyed = crate::seal::wipe::destroy_key(data)?;
    if let Some(c) = client {
        let _ = c.stop();
        wait_for_store(data);
    }
    let report = crate::seal::wipe(data)?;
    if destroyed {
        println!("the data key is destroyed: the sealed store can no longer be read");
    } else {
        println!("the store was not sealed: its files were overwritten before removal");
    }
    println!(
        "removed {} files from {}",
        report.files_removed,
        data.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Waits up to a few seconds for a running node to let go of its store.
fn wait_for_store(data: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while data.join("node.toml").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
