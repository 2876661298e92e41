//! `kolokol bundle create`, `kolokol verify`, `kolokol inspect`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::json;
use super::newsroom::newsroom_dir;
use super::{display, now, printable};
use crate::newsroom::checks::check_article;
use crate::newsroom::{ArticleDraft, Newsroom, PublishOptions, Published};
use crate::proto::bundle::{BundleFile, FrameReader, FrameTag, verify_bundle_file};
use crate::proto::limits::MAX_REVOCATION_BYTES;
use crate::proto::{
    BundleId, Head, KeyCertificate, Manifest, Revocation, TrustPolicy, VerifiedBundle,
    decode_unverified,
};

#[derive(Debug, Subcommand)]
pub(super) enum BundleCommand {
    /// Sign an article (Markdown or HTML) into a bundle file and print its id.
    Create(CreateArgs),
}

/// Metadata flags shared by `bundle create` and (later) `publish`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The article: Markdown (.md) or HTML (.html); YAML front matter may carry metadata.
    pub(crate) article: PathBuf,
    /// Newsroom folder [default: DATA_DIR/newsroom].
    #[arg(long, env = "KOLOKOL_NEWSROOM")]
    pub(crate) newsroom: Option<PathBuf>,
    /// Headline [default: front matter, then the first heading].
    #[arg(long)]
    pub(crate) title: Option<String>,
    /// Language tag, e.g. ru or en [default: front matter, then `und`].
    #[arg(long)]
    pub(crate) lang: Option<String>,
    /// Author (repeatable).
    #[arg(long = "author")]
    pub(crate) authors: Vec<String>,
    /// Section.
    #[arg(long)]
    pub(crate) section: Option<String>,
    /// Original URL on the newsroom's site.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Summary for lists and feeds.
    #[arg(long)]
    pub(crate) summary: Option<String>,
    /// First publication date [default: front matter, then now].
    #[arg(long)]
    pub(crate) date: Option<String>,
    /// Image or other media file to include (repeatable); the article refers to it by file name.
    #[arg(long = "image", value_name = "FILE")]
    pub(crate) images: Vec<PathBuf>,
    /// Story id: 32 hex digits, or the newsroom's own id for it; an existing story gets a new version.
    #[arg(long)]
    pub(crate) story: Option<String>,
    /// Publish as a correction of this bundle's story (bundle id or .kolokol file).
    #[arg(long, value_name = "ID", conflicts_with = "retract")]
    pub(crate) correction_of: Option<String>,
    /// Publish as a retraction of this bundle's story (bundle id or .kolokol file); the article is the notice.
    #[arg(long, value_name = "ID")]
    pub(crate) retract: Option<String>,
    /// Also write the bundle file here (checked before signing; if it cannot be written, nothing is published).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Sign even when a check refuses: the same content as the story's current version, a language that is not a BCP 47 tag, an empty body, a reference to an image not given.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    /// Bundle files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A revocation file to apply (repeatable), besides those carried in the bundle files.
    #[arg(long = "revocation", value_name = "FILE")]
    revocations: Vec<PathBuf>,
    /// Print one JSON object (docs/cli-json.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// A .kolokol file.
    file: PathBuf,
    /// Print one JSON object (docs/cli-json.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) fn run_bundle(cmd: BundleCommand, data: &Path) -> Result<ExitCode> {
    match cmd {
        BundleCommand::Create(args) => {
            let newsroom =
                super::newsroom::open_newsroom(&newsroom_dir(args.newsroom.clone(), data))?;
            let out = args.out.clone();
            let published = create(&newsroom, args)?;
            if let Some(out) = out {
                eprintln!("wrote {}", display(&out));
            }
            describe(
                &published.bundle,
                &newsroom.config().name,
                &mut std::io::stderr(),
            );
            eprintln!("kept in {}", display(&published.path));
            println!("{}", published.bundle.id());
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl CreateArgs {
    /// What the flags say about the article.
    fn article_draft(self) -> ArticleDraft {
        ArticleDraft {
            title: self.title,
            lang: self.lang,
            authors: self.authors,
            section: self.section,
            url: self.url,
            summary: self.summary,
            date: self.date,
            story: self.story,
            images: self.images,
            correction_of: self.correction_of,
            retraction_of: self.retract,
        }
    }
}

/// Builds the article's draft and signs it, writing the `--out` copy too
/// (or nothing at all, if that copy cannot be written).
pub(crate) fn create(newsroom: &Newsroom, args: CreateArgs) -> Result<Published> {
    let path = args.article.clone();
    let opts = PublishOptions {
        out: args.out.clone(),
    };
    let force = args.force;
    let images = args.images.clone();
    let draft = newsroom.article_draft(&path, &args.article_draft())?;
    // Every check before anything is signed.
    for warning in check_article(&path, &images, &draft, force)? {
        eprintln!("warning: {warning}");
    }
    newsroom.check_republication(&draft, force)?;
    Ok(newsroom.publish_with(draft, now(), &opts)?)
}

/// Prints what a verified bundle is.
pub(crate) fn describe(bundle: &VerifiedBundle, publisher: &str, out: &mut dyn std::io::Write) {
    let m = bundle.manifest();
    let _ = writeln!(out, "  publisher:   {publisher} ({})", m.publisher);
    let _ = writeln!(out, "  title:       {}", printable(&m.metadata.title));
    let _ = writeln!(
        out,
        "  story:       {}  version {}  {}",
        m.story,
        m.version,
        m.kind.as_str()
    );
    let _ = writeln!(out, "  sequence:    {}", m.sequence);
    let _ = writeln!(out, "  language:    {}", m.metadata.language);
    let _ = writeln!(out, "  signing key: certificate {}", m.certificate.short());
    let _ = writeln!(out, "  signed at:   {}", m.signed_at);
    let _ = writeln!(
        out,
        "  files:       {} ({} bytes)",
        m.entries.len(),
        m.total_size()
    );
    let _ = writeln!(out, "  bundle id:   {}", bundle.id());
}

fn read_bundle_file(path: &Path) -> Result<BundleFile> {
    let f = fs::File::open(path).with_context(|| display(path))?;
    BundleFile::read(std::io::BufReader::new(f)).with_context(|| display(path))
}

/// A verified file as `verify --json` gives it.
fn verified_json(
    path: &Path,
    v: &crate::proto::bundle::VerifiedBundleFile,
    names: &std::collections::HashMap<crate::proto::PublicKey, String>,
) -> json::VerifiedFile {
    let m = v.bundle.manifest();
    let c = &v.certificate;
    json::VerifiedFile {
        path: display(path),
        ok: true,
        error: None,
        bundle: Some(json::BundleInfo {
            id: v.bundle.id().to_string(),
            publisher: json::key_hex(&m.publisher),
            publisher_name: names.get(&m.publisher).cloned(),
            story: m.story.to_string(),
            version: m.version,
            kind: m.kind.as_str().to_owned(),
            sequence: m.sequence,
            title: m.metadata.title.clone(),
            language: m.metadata.language.clone(),
            signed_at: json::secs(m.signed_at),
            files: m.entries.len() as u64,
            bytes: m.total_size(),
            signing_key: json::SigningKey {
                certificate: m.certificate.to_string(),
                key: json::key_hex(&c.signing_key),
                serial: c.serial,
                not_before: json::secs(c.not_before),
                not_after: json::secs(c.not_after),
            },
        }),
    }
}

pub(super) fn verify(args: VerifyArgs, data: &Path) -> Result<ExitCode> {
    let trust = super::store::trust_list(data)?;
    let names: std::collections::HashMap<_, _> = trust
        .list()?
        .into_iter()
        .map(|p| (p.root_key, p.name))
        .collect();
    let mut policy: TrustPolicy = trust.policy()?;
    for path in &args.revocations {
        let bytes = crate::files::read_bounded(path, MAX_REVOCATION_BYTES as u64)?;
        policy
            .learn_revocation(&bytes)
            .with_context(|| format!("{}: revocation rejected", display(path)))?;
    }
    // A revocation carried by any of the files applies to all of them.
    let mut files = Vec::new();
    for path in &args.files {
        match read_bundle_file(path) {
            Ok(f) => {
                for r in &f.revocations {
                    let _ = policy.learn_revocation(r);
                }
                files.push((path, Ok(f)));
            }
            Err(e) => files.push((path, Err(e))),
        }
    }
    let now = now();
    let mut failed = 0;
    let mut out = Vec::new();
    for (path, file) in files {
        let result =
            file.and_then(|f| verify_bundle_file(&policy, f, now).map_err(anyhow::Error::from));
        if args.json {
            out.push(match result {
                Ok(v) => verified_json(path, &v, &names),
                Err(e) => {
                    failed += 1;
                    json::VerifiedFile {
                        path: display(path),
                        ok: false,
                        error: Some(super::report::chain(&e)),
                        bundle: None,
                    }
                }
            });
            continue;
        }
        match result {
            Ok(v) => {
                println!("OK {}", display(path));
                let name = names
                    .get(&v.bundle.manifest().publisher)
                    .map_or("?", |s| s.as_str());
                describe(&v.bundle, name, &mut std::io::stdout());
                let c = &v.certificate;
                println!(
                    "  signing key: {} (serial {}, valid {} to {})",
                    c.signing_key, c.serial, c.not_before, c.not_after
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAILED {}: {}", display(path), super::report::chain(&e));
            }
        }
    }
    if args.json {
        json::print(&json::Verify {
            format: json::FORMAT,
            ok: failed == 0,
            files: out,
        })?;
    } else if failed > 0 {
        eprintln!("{failed} of {} files failed verification", args.files.len());
    }
    if failed > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `inspect --json`: every frame, decoded without checking anything.
fn inspect_json(path: &Path, frames: &mut FrameReader<impl std::io::Read>) -> Result<ExitCode> {
    fn undecodable(frame: &str, e: impl std::fmt::Display) -> json::Frame {
        json::Frame::Undecodable {
            frame: frame.to_owned(),
            error: e.to_string(),
        }
    }
    let file_kind = match frames.kind() {
        crate::proto::bundle::FileKind::Bundle => "bundle",
        crate::proto::bundle::FileKind::Archive => "archive",
    };
    let mut out = Vec::new();
    let mut error = None;
    let mut entries: Vec<crate::proto::Entry> = Vec::new();
    let mut blob_index = 0;
    loop {
        let frame = match frames.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        let p = &frame.payload;
        let item = match frame.tag {
            FrameTag::Certificate => match decode_unverified::<KeyCertificate>(p) {
                Ok(c) => json::Frame::Certificate {
                    id: crate::proto::CertId::of(p).to_string(),
                    publisher: json::key_hex(&c.publisher),
                    signing_key: json::key_hex(&c.signing_key),
                    serial: c.serial,
                    not_before: json::secs(c.not_before),
                    not_after: json::secs(c.not_after),
                    languages: c.scope.languages,
                },
                Err(e) => undecodable("certificate", e),
            },
            FrameTag::Revocation => match decode_unverified::<Revocation>(p) {
                Ok(r) => json::Frame::Revocation {
                    publisher: json::key_hex(&r.publisher),
                    key: json::key_hex(&r.key),
                    effective_from: json::secs(r.effective_from),
                    reason: r.reason,
                },
                Err(e) => undecodable("revocation", e),
            },
            FrameTag::Head => match decode_unverified::<Head>(p) {
                Ok(h) => json::Frame::Head {
                    publisher: json::key_hex(&h.publisher),
                    sequence: h.sequence,
                    issued_at: json::secs(h.issued_at),
                    expires_at: json::secs(h.expires_at),
                },
                Err(e) => undecodable("head", e),
            },
            FrameTag::Manifest => match decode_unverified::<Manifest>(p) {
                Ok(m) => {
                    let item = json::Frame::Manifest {
                        id: BundleId::of(p).to_string(),
                        publisher: json::key_hex(&m.publisher),
                        title: m.metadata.title.clone(),
                        language: m.metadata.language.clone(),
                        authors: m.metadata.authors.clone(),
                        story: m.story.to_string(),
                        version: m.version,
                        kind: m.kind.as_str().to_owned(),
                        sequence: m.sequence,
                        supersedes: m.supersedes.map(|s| s.to_string()),
                        signed_at: json::secs(m.signed_at),
                        certificate: m.certificate.to_string(),
                        entries: m.entries.len() as u64,
                    };
                    entries = m.entries;
                    blob_index = 0;
                    item
                }
                Err(e) => undecodable("manifest", e),
            },
            FrameTag::Blob => {
                let entry = entries.get(blob_index);
                blob_index += 1;
                json::Frame::Blob {
                    path: entry.map(|e| e.path.clone()),
                    media_type: entry.map(|e| e.media_type.clone()),
                    size: p.len() as u64,
                    blake3: crate::proto::BlobHash::of(p).to_string(),
                }
            }
            FrameTag::MirrorList => {
                match decode_unverified::<crate::proto::mirrors::MirrorList>(p) {
                    Ok(l) => json::Frame::MirrorList {
                        publisher: json::key_hex(&l.publisher),
                        libp2p: l.libp2p,
                        https: l.https,
                        issued_at: json::secs(l.issued_at),
                        expires_at: json::secs(l.expires_at),
                    },
                    Err(e) => undecodable("mirror list", e),
                }
            }
            FrameTag::End => continue,
        };
        out.push(item);
    }
    let damaged = error.is_some();
    json::print(&json::Inspect {
        format: json::FORMAT,
        verified: false,
        path: display(path),
        file_kind: file_kind.to_owned(),
        frames: out,
        error,
    })?;
    // As the text output does: a damaged file fails.
    Ok(if damaged {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn inspect(args: InspectArgs) -> Result<ExitCode> {
    let path = &args.file;
    let f = fs::File::open(path).with_context(|| display(path))?;
    let mut frames = FrameReader::new(std::io::BufReader::new(f)).with_context(|| display(path))?;
    if args.json {
        return inspect_json(path, &mut frames);
    }
    println!(
        "UNVERIFIED contents of {} ({:?} file). Nothing below has been checked; use `kolokol verify`.",
        display(path),
        frames.kind()
    );
    let mut entries: Vec<crate::proto::Entry> = Vec::new();
    let mut blob_index = 0;
    loop {
        let frame = match frames.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                eprintln!("error: {}: {e}", display(path));
                return Ok(ExitCode::FAILURE);
            }
        };
        let p = &frame.payload;
        match frame.tag {
            FrameTag::Certificate => match decode_unverified::<KeyCertificate>(p) {
                Ok(c) => println!(
                    "certificate #{}: publisher {} key {} valid {} to {}{}",
                    c.serial,
                    c.publisher,
                    c.signing_key,
                    c.not_before,
                    c.not_after,
                    if c.scope.languages.is_empty() {
                        String::new()
                    } else {
                        format!(" languages {:?}", c.scope.languages)
                    }
                ),
                Err(e) => println!("certificate: undecodable: {e}"),
            },
            FrameTag::Revocation => match decode_unverified::<Revocation>(p) {
                Ok(r) => println!(
                    "revocation: key {} from {} ({})",
                    r.key,
                    r.effective_from,
                    printable(&r.reason)
                ),
                Err(e) => println!("revocation: undecodable: {e}"),
            },
            FrameTag::Head => match decode_unverified::<Head>(p) {
                Ok(h) => println!(
                    "head: sequence {} issued {} expires {}",
                    h.sequence, h.issued_at, h.expires_at
                ),
                Err(e) => println!("head: undecodable: {e}"),
            },
            FrameTag::Manifest => match decode_unverified::<Manifest>(p) {
                Ok(m) => {
                    println!("manifest {}:", BundleId::of(p));
                    println!("  publisher {}", m.publisher);
                    println!("  title     {}", printable(&m.metadata.title));
                    println!(
                        "  language  {}  authors {:?}",
                        printable(&m.metadata.language),
                        m.metadata.authors
                    );
                    println!(
                        "  story     {} version {} {} sequence {}",
                        m.story,
                        m.version,
                        m.kind.as_str(),
                        m.sequence
                    );
                    if let Some(s) = m.supersedes {
                        println!("  supersedes {s}");
                    }
                    println!(
                        "  signed at {} with certificate {}",
                        m.signed_at, m.certificate
                    );
                    entries = m.entries;
                    blob_index = 0;
                }
                Err(e) => println!("manifest: undecodable: {e}"),
            },
            FrameTag::Blob => {
                let label = entries
                    .get(blob_index)
                    .map_or("(no entry)".to_string(), |e| {
                        format!("{} {}", printable(&e.path), printable(&e.media_type))
                    });
                println!(
                    "blob: {label}, {} bytes, blake3 {}",
                    p.len(),
                    crate::proto::BlobHash::of(p)
                );
                blob_index += 1;
            }
            FrameTag::MirrorList => {
                match decode_unverified::<crate::proto::mirrors::MirrorList>(p) {
                    Ok(l) => println!(
                        "mirror list: {} libp2p address(es), {} web tree(s), issued {} expires {}",
                        l.libp2p.len(),
                        l.https.len(),
                        l.issued_at,
                        l.expires_at
                    ),
                    Err(e) => println!("mirror list: undecodable: {e}"),
                }
            }
            FrameTag::End => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}
