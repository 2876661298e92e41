//! `kolokol newsroom`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Subcommand;
use zeroize::Zeroizing;

use super::{display, now, parse_duration, parse_time, printable};
use crate::newsroom::keyfile::{
    KdfParams, KeyFileError, PassphraseSource, Purpose, check_new_passphrase,
};
use crate::newsroom::offline::{self, PENDING_KEY};
use crate::newsroom::{InitOptions, Newsroom, Unlock};
use crate::trust::share::fingerprint;

/// Days a mirror list signed by `newsroom init --mirror` stays valid, as
/// `newsroom mirrors` signs by default.
const MIRROR_DAYS: u64 = 90;

/// The environment variable a script gives the key passphrase in.
const PASSPHRASE_ENV: &str = "KOLOKOL_PASSPHRASE";
/// Hidden: Argon2id cost for newly encrypted key files, as `m=KIB,t=N,p=N`.
/// Only for tests, which would otherwise spend most of their time in the
/// key derivation; the defaults are what real keys should use.
const KDF_COST_ENV: &str = "KOLOKOL_KDF_COST";

/// Passphrases from `KOLOKOL_PASSPHRASE`, or asked on the terminal without
/// echo. One passphrase serves every key file of a command: the first one
/// obtained is kept for the rest of the process (in zeroized memory).
struct CliPassphrase {
    cached: Mutex<Option<Zeroizing<String>>>,
}

impl PassphraseSource for CliPassphrase {
    fn passphrase(&self, path: &Path, purpose: Purpose) -> Result<Zeroizing<String>, KeyFileError> {
        let mut cached = self
            .cached
            .lock()
            .map_err(|_| KeyFileError::BadPassphrase("passphrase cache poisoned".into()))?;
        if let Some(p) = cached.as_ref() {
            return Ok(p.clone());
        }
        let passphrase = if let Some(p) = std::env::var_os(PASSPHRASE_ENV) {
            let p = Zeroizing::new(p.into_string().map_err(|_| {
                KeyFileError::BadPassphrase(format!("{PASSPHRASE_ENV} is not UTF-8"))
            })?);
            if purpose == Purpose::NewKey {
                check_new_passphrase(&p)?;
            }
            p
        } else if std::io::stdin().is_terminal() {
            let ask = |prompt: String| {
                rpassword::prompt_password(prompt)
                    .map(Zeroizing::new)
                    .map_err(|source| KeyFileError::Io {
                        path: path.to_owned(),
                        source,
                    })
            };
            match purpose {
                Purpose::Unlock => ask(format!("passphrase for {}: ", path.display()))?,
                Purpose::NewKey => {
                    let first = ask("new passphrase for the newsroom's keys: ".into())?;
                    check_new_passphrase(&first)?;
                    let again = ask("the same passphrase again: ".into())?;
                    if *first != *again {
                        return Err(KeyFileError::BadPassphrase(
                            "the two passphrases differ".into(),
                        ));
                    }
                    first
                }
            }
        } else {
            return Err(KeyFileError::NoPassphrase(path.to_owned()));
        };
        *cached = Some(passphrase.clone());
        Ok(passphrase)
    }
}

/// How the command line unlocks and seals key files.
fn cli_unlock() -> Result<Unlock> {
    let kdf = match std::env::var(KDF_COST_ENV) {
        Ok(text) => KdfParams::parse(&text).context(KDF_COST_ENV)?,
        Err(_) => KdfParams::default(),
    };
    Ok(Unlock {
        source: Arc::new(CliPassphrase {
            cached: Mutex::new(None),
        }),
        kdf,
    })
}

/// Opens a newsroom folder, able to ask for the passphrase of encrypted
/// key files.
pub(super) fn open_newsroom(dir: &Path) -> Result<Newsroom> {
    Ok(Newsroom::open(dir)?.with_unlock(cli_unlock()?))
}

#[derive(Debug, Subcommand)]
pub(super) enum NewsroomCommand {
    /// Create a newsroom: root key, first signing key and certificate, public publisher file.
    #[command(after_long_help = super::help::NEWSROOM_INIT)]
    Init {
        /// Short name: lower-case letters, digits and '-'.
        #[arg(long)]
        name: String,
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Name shown to readers.
        #[arg(long)]
        display_name: Option<String>,
        /// The newsroom's own site.
        #[arg(long)]
        homepage: Option<String>,
        /// Validity of the first signing key (e.g. 365d).
        #[arg(long, default_value = "365d")]
        valid_for: String,
        /// Limit the signing key to these languages (repeatable).
        #[arg(long = "lang")]
        languages: Vec<String>,
        /// Encrypt both secret keys under a passphrase (from KOLOKOL_PASSPHRASE, or asked).
        #[arg(long)]
        encrypt: bool,
        /// A mirror that carries the newsroom's stories, as its libp2p
        /// address ending in /p2p/<peer id> (repeatable): signed into the
        /// mirror list the publisher file carries, for 90 days (change it
        /// later with `kolokol newsroom mirrors`).
        #[arg(long = "mirror", value_name = "MULTIADDR")]
        mirrors: Vec<String>,
    },
    /// Print the publisher file as one line of text to paste into a chat
    /// (`kolokol trust add` takes it), and optionally as a QR code image.
    #[command(after_long_help = super::help::NEWSROOM_SHARE)]
    Share {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Also write a QR code of the text to this PNG file.
        #[arg(long, value_name = "FILE.png")]
        qr: Option<PathBuf>,
    },
    /// Encrypt the newsroom's secret keys under a passphrase (from KOLOKOL_PASSPHRASE, or asked).
    EncryptKeys {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
    },
    /// Decrypt the newsroom's secret keys back to plain files.
    DecryptKeys {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
    },
    /// Move root.key out of the newsroom folder into a new folder for an offline machine.
    ExportRoot {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// The new folder (e.g. on a USB stick) to take to the offline machine.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a new pending signing key and a certificate request for the offline root.
    Request {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Where to write the request file.
        #[arg(long)]
        out: PathBuf,
        /// Validity asked for the new key (e.g. 90d).
        #[arg(long, default_value = "365d")]
        valid: String,
        /// Limit the new key to these languages (repeatable) [default: as the current key].
        #[arg(long = "lang")]
        languages: Vec<String>,
    },
    /// Check a certificate request and sign its certificate (needs the root key).
    SignRequest {
        /// The request file.
        request: PathBuf,
        /// Newsroom folder holding root.key [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Where to write the certificate.
        #[arg(long)]
        out: PathBuf,
        /// Sign without asking for confirmation on the terminal.
        #[arg(long)]
        yes: bool,
    },
    /// Install a certificate signed offline for the pending key and make it current.
    InstallCert {
        /// The certificate file.
        cert: PathBuf,
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
    },
    /// Install a revocation made where the root key is.
    InstallRevocation {
        /// The revocation file (revocations/KEY.rev of the offline folder).
        file: PathBuf,
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
    },
    /// Make a new signing key with a fresh certificate (needs the root key).
    Rotate {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Validity of the new key (e.g. 365d).
        #[arg(long, default_value = "365d")]
        valid_for: String,
    },
    /// Revoke a signing key (needs the root key).
    Revoke {
        /// The signing key (ed25519:...) or its certificate serial.
        key: String,
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Refuse everything the key signed from this time on: `now`, a date or an RFC 3339 time.
        /// Set it to the earliest moment the key may have been compromised.
        #[arg(long, default_value = "now")]
        effective: String,
        /// Reason shown to readers.
        #[arg(long, default_value = "key withdrawn")]
        reason: String,
        /// Refuse everything the key signed above this sequence number, whatever time it
        /// claims [default: the highest the key signed before --effective, by the folder's
        /// published bundles].
        #[arg(long)]
        last_sequence: Option<u64>,
    },
    /// Ask the network which peers and mirrors hold a story (through the
    /// node running on the data directory).
    Report {
        /// The story: its id, or a prefix of its id or of one of its
        /// bundles' ids (at least 8 digits).
        story: String,
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// How long to wait for answers (at most 120s).
        #[arg(long, default_value = "10s")]
        wait: humantime::Duration,
    },
    /// Sign the list of mirrors that carry the newsroom's stories, so that
    /// readers who lose one find the others; it goes into the publisher file.
    Mirrors {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
        /// Mirrors' libp2p addresses, each ending in /p2p/<peer id>.
        #[arg(long = "libp2p", visible_alias = "mirror", value_name = "ADDR", num_args = 1..)]
        libp2p: Vec<String>,
        /// Web trees' https:// base URLs.
        #[arg(long = "https", value_name = "URL", num_args = 1..)]
        https: Vec<String>,
        /// Days the list stays valid (at most 366).
        #[arg(long, default_value_t = 90)]
        days: u64,
    },
    /// Show the newsroom's keys and counts.
    Info {
        /// Newsroom folder [default: DATA_DIR/newsroom].
        #[arg(long, env = "KOLOKOL_NEWSROOM")]
        dir: Option<PathBuf>,
    },
}

pub(super) fn newsroom_dir(dir: Option<PathBuf>, data: &Path) -> PathBuf {
    dir.unwrap_or_else(|| data.join("newsroom"))
}

pub(super) fn run(cmd: NewsroomCommand, data: &Path) -> Result<ExitCode> {
    match cmd {
        NewsroomCommand::Init {
            name,
            dir,
            display_name,
            homepage,
            valid_for,
            languages,
            encrypt,
            mirrors,
        } => {
            // Before anything is written: a typo leaves no half-made newsroom.
            super::mirrors::check_addrs("--mirror", &mirrors)?;
            let dir = newsroom_dir(dir, data);
            let opts = InitOptions {
                name,
                display_name,
                homepage,
                key_validity_secs: parse_duration(&valid_for).context("--valid-for")?,
                languages,
            };
            let n = if encrypt {
                Newsroom::init_encrypted(&dir, &opts, now(), cli_unlock()?)?
            } else {
                Newsroom::init(&dir, &opts, now())?
            };
            let cert = n.current_key()?;
            println!("created newsroom {} in {}", n.config().name, display(&dir));
            println!("root key:     {}", n.root_public());
            println!(
                "signing key:  {} (valid {} to {})",
                cert.signing_key, cert.not_before, cert.not_after
            );
            println!(
                "publisher file for readers' trust lists: {}",
                display(&n.public_file_path())
            );
            println!(
                "keep {} offline and backed up; it is the newsroom's identity",
                display(&dir.join("root.key"))
            );
            if encrypt {
                println!("both secret keys are encrypted under the passphrase");
            }
            if !mirrors.is_empty() {
                let signed = n
                    .sign_mirror_list(mirrors, Vec::new(), MIRROR_DAYS * super::mirrors::DAY, now())
                    .context("the newsroom is made, but its mirror list was not signed (sign it with `kolokol newsroom mirrors`)")?;
                println!(
                    "mirrors in the publisher file: {} (signed list valid until {})",
                    signed.list.libp2p.len(),
                    signed.list.expires_at
                );
            }
            println!("fingerprint:  {}", fingerprint(&n.root_public()));
            println!(
                "hand it to readers as text: `kolokol newsroom share` (--qr FILE.png for a QR code)"
            );
        }
        NewsroomCommand::Share { dir, qr } => {
            let n = Newsroom::open(&newsroom_dir(dir, data))?;
            let path = n.public_file_path();
            let file = crate::files::read_bounded_text(&path, crate::trust::MAX_PUBLISHER_FILE)?;
            // Checked as a reader will check it, so nothing unreadable goes out.
            crate::trust::PublisherFile::parse(&file, &path)?;
            let text = crate::trust::share::encode_text(file.as_bytes());
            if let Some(out) = qr {
                let png = crate::trust::share::qr_png(&text)?;
                crate::files::write_atomic(&out, &png)?;
                eprintln!("QR code written to {}", display(&out));
            }
            eprintln!("fingerprint: {}", fingerprint(&n.root_public()));
            println!("{text}");
        }
        NewsroomCommand::EncryptKeys { dir } => {
            let n = open_newsroom(&newsroom_dir(dir, data))?;
            for c in n.encrypt_keys()? {
                let what = if c.changed {
                    "encrypted"
                } else {
                    "already encrypted"
                };
                println!("{}: {what}", c.file);
            }
        }
        NewsroomCommand::DecryptKeys { dir } => {
            let n = open_newsroom(&newsroom_dir(dir, data))?;
            for c in n.decrypt_keys()? {
                let what = if c.changed {
                    "decrypted"
                } else {
                    "already plain"
                };
                println!("{}: {what}", c.file);
            }
        }
        NewsroomCommand::ExportRoot { dir, out } => {
            let n = open_newsroom(&newsroom_dir(dir, data))?;
            let key = n.export_root(&out)?;
            println!("moved the root key to {}", display(&key));
            println!(
                "take {} to the offline machine; {} no longer holds the root key",
                display(&out),
                display(n.dir())
            );
            println!(
                "new signing keys: `newsroom request` here, `newsroom sign-request` there, `newsroom install-cert` here"
            );
        }
        NewsroomCommand::Request {
            dir,
            out,
            valid,
            languages,
        } => {
            let n = open_newsroom(&newsroom_dir(dir, data))?;
            let validity = parse_duration(&valid).context("--valid")?;
            let languages = (!languages.is_empty()).then_some(languages);
            let (key, bytes) = n.request(now(), validity, languages)?;
            offline::write_carry_file(&out, &bytes)?;
            println!("new pending signing key {key}");
            println!(
                "kept in {}; request written to {}",
                display(&n.dir().join(PENDING_KEY)),
                display(&out)
            );
            println!(
                "on the machine with the root key: kolokol newsroom sign-request {} --out CERT",
                display(&out)
            );
        }
        NewsroomCommand::SignRequest {
            request,
            dir,
            out,
            yes,
        } => {
            let n = open_newsroom(&newsroom_dir(dir, data))?;
            let bytes = offline::read_request(&request)?;
            let checked = n.check_request(&bytes, &request, now())?;
            let c = &checked.certificate;
            println!(
                "request from newsroom {} ({})",
                printable(&checked.request.name),
                checked.request.publisher
            );
            println!("made at      {}", checked.request.created_at);
            println!("signing key  {}", c.signing_key);
            println!("serial       {}", c.serial);
            println!("valid        {} to {}", c.not_before, c.not_after);
            let langs = if c.scope.languages.is_empty() {
                "any".to_owned()
            } else {
                printable(&c.scope.languages.join(", "))
            };
            println!("languages    {langs}");
            if !yes && std::io::stdin().is_terminal() {
                eprint!("sign this certificate? [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    anyhow::bail!("not signed");
                }
            }
            let cert = n.sign_request(&checked)?;
            offline::write_carry_file(&out, cert.bytes())?;
            println!(
                "certificate #{} written to {}; carry it back and run `kolokol newsroom install-cert`",
                cert.serial,
                display(&out)
            );
        }
        NewsroomCommand::InstallCert { cert, dir } => {
            let n = open_newsroom(&newsroom_dir(dir, data))?;
            let cert = n.install_cert(&cert)?;
            println!(
                "signing key {} is now current (serial {}, valid {} to {})",
                cert.signing_key, cert.serial, cert.not_before, cert.not_after
            );
        }
        NewsroomCommand::InstallRevocation { file, dir } => {
            let n = open_newsroom(&newsroom_dir(dir, data))?;
            match n.install_revocation(&file)? {
                Some(rev) => {
                    println!("installed: {} revoked from {}", rev.key, rev.effective_from);
                    println!("it travels with the next story published");
                    if n.current_key()?.signing_key == rev.key {
                        println!(
                            "this was the current signing key: get a new one with `kolokol newsroom request`"
                        );
                    }
                }
                None => println!("already known: an equal or earlier revocation is installed"),
            }
        }
        NewsroomCommand::Rotate { dir, valid_for } => {
            let dir = newsroom_dir(dir, data);
            let n = open_newsroom(&dir)?;
            let cert = n.rotate(now(), parse_duration(&valid_for)?)?;
            println!(
                "new signing key {} (serial {}, valid {} to {})",
                cert.signing_key, cert.serial, cert.not_before, cert.not_after
            );
        }
        NewsroomCommand::Revoke {
            key,
            dir,
            effective,
            reason,
            last_sequence,
        } => {
            let dir = newsroom_dir(dir, data);
            let n = open_newsroom(&dir)?;
            let effective = parse_time(&effective).context("--effective")?;
            let rev = n.revoke(&key, effective, last_sequence, &reason, now())?;
            println!(
                "revoked {} from {} and above sequence {}",
                rev.key,
                rev.effective_from,
                rev.last_sequence.unwrap_or(u64::MAX)
            );
            println!(
                "revocation file: {} (for a newsroom folder without the root key: `kolokol newsroom install-revocation FILE`)",
                display(&n.revocation_path(&rev.key))
            );
            // A node running on this data directory announces it at once;
            // otherwise it travels with the next bundle published.
            if let Some(client) = crate::node::control::ControlClient::for_data_dir(data) {
                let removed = client.revoke(rev.bytes()).context(
                    "the revocation is saved in the newsroom folder, but announcing it through the running node failed",
                )?;
                println!(
                    "announced to the network through the running node ({removed} stored bundles removed)"
                );
            } else {
                println!(
                    "no node runs on this data directory: the revocation travels with the next story published"
                );
            }
            if n.current_key()?.signing_key == rev.key {
                println!(
                    "this was the current signing key: run `kolokol newsroom rotate` before signing again"
                );
            }
        }
        NewsroomCommand::Report { story, dir, wait } => {
            let dir = newsroom_dir(dir, data);
            let n = open_newsroom(&dir)?;
            return report(&n, &story, wait.into(), data);
        }
        NewsroomCommand::Mirrors {
            dir,
            libp2p,
            https,
            days,
        } => super::mirrors::run(dir, libp2p, https, days, data)?,
        NewsroomCommand::Info { dir } => {
            let dir = newsroom_dir(dir, data);
            let n = open_newsroom(&dir)?;
            println!("newsroom:   {}", n.config().name);
            println!("root key:   {}", n.root_public());
            println!("fingerprint: {}", fingerprint(&n.root_public()));
            for m in n.public_file().mirror_addresses() {
                println!("mirror:     {}", printable(&m));
            }
            for (file, what) in [
                ("root.key", "root secret key"),
                ("signing.key", "signing secret key"),
                (PENDING_KEY, "pending signing key"),
            ] {
                let state = match n.key_encrypted(file) {
                    Ok(Some(true)) => "present, encrypted".to_owned(),
                    Ok(Some(false)) => "present, not encrypted".to_owned(),
                    Ok(None) if file == "root.key" => "absent (kept offline?)".to_owned(),
                    Ok(None) => continue,
                    Err(e) => format!("unreadable: {e}"),
                };
                println!("{what}: {state}");
            }
            let policy = n.policy()?;
            if let Some(p) = policy.publisher(&n.root_public()) {
                let mut certs: Vec<_> = p.certificates().collect();
                certs.sort_by_key(|c| c.serial);
                for c in certs {
                    let revoked = p
                        .revocations()
                        .find(|r| r.key == c.signing_key)
                        .map(|r| format!("  REVOKED from {}", r.effective_from))
                        .unwrap_or_default();
                    println!(
                        "key #{:<3} {}  valid {} to {}{}",
                        c.serial, c.signing_key, c.not_before, c.not_after, revoked
                    );
                }
            }
            println!("published:  {} bundles", n.published_count()?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kolokol newsroom report`: who says they hold a story, and which
/// version.
fn report(n: &Newsroom, text: &str, wait: std::time::Duration, data: &Path) -> Result<ExitCode> {
    let published = n.published()?;
    let versions: Vec<_> = published
        .iter()
        .filter(|e| {
            text.len() >= 8
                && (e.story.to_string().starts_with(text) || e.id.to_string().starts_with(text))
        })
        .collect();
    let Some(first) = versions.first() else {
        anyhow::bail!("{text:?} names no story this newsroom published (give at least 8 digits)");
    };
    let story = first.story;
    if versions.iter().any(|e| e.story != story) {
        anyhow::bail!("{text:?} matches several stories; give more digits");
    }
    let mut ours: Vec<_> = published
        .iter()
        .filter(|e| e.story == story)
        .map(|e| (e.version, e.id))
        .collect();
    ours.sort();
    let Some(&(latest, latest_id)) = ours.last() else {
        anyhow::bail!("no version of the story is published");
    };
    let client = crate::node::control::ControlClient::for_data_dir(data).with_context(|| {
        format!(
            "no node runs on {}: start `kolokol node` to ask the network",
            super::display(data)
        )
    })?;
    let holdings = client.report(&n.root_public(), &story, wait)?;
    println!(
        "story {story}, latest version {latest} (bundle {})",
        latest_id.short()
    );
    let mut with_latest = 0;
    for h in &holdings {
        let kind = if h.mirror { "mirror" } else { "peer  " };
        let what = match (&h.error, h.bundles.is_empty()) {
            (Some(e), _) => format!("no answer: {e}"),
            (None, true) => "does not hold it".to_owned(),
            (None, false) => {
                let held: Vec<String> = h
                    .bundles
                    .iter()
                    .map(|b| {
                        ours.iter().find(|(_, id)| id == b).map_or_else(
                            || format!("unknown bundle {}", b.short()),
                            |(v, _)| format!("v{v}"),
                        )
                    })
                    .collect();
                if h.bundles.contains(&latest_id) {
                    with_latest += 1;
                }
                format!("holds {}", held.join(", "))
            }
        };
        println!("  {kind} {}  {what}", h.peer);
    }
    println!(
        "{with_latest} of {} peers asked hold the latest version",
        holdings.len()
    );
    Ok(ExitCode::SUCCESS)
}
