//! Shared fixtures: a publisher with fixed seed keys and helpers to sign
//! manifests, heads, certificates and revocations at chosen times.
#![allow(dead_code, unreachable_pub)]

pub mod connect;
pub mod gateway;
pub mod lab;
pub mod mirrors;
pub mod net;
pub mod nginx;
pub mod process;
pub mod recording;
pub mod sealed;
pub mod sockets;
pub mod tls;

use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;
use kolokol::store::Store;

pub const T0: Timestamp = Timestamp(1_750_000_000);
pub const DAY: u64 = 86_400;

pub fn seed(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

pub struct Publisher {
    pub root: SecretKey,
    pub signing: SecretKey,
    pub cert: Vec<u8>,
}

impl Publisher {
    /// Root key from seed `n`, signing key from seed `n + 1`, a certificate
    /// valid from T0 for 30 days.
    pub fn new(n: u8) -> Self {
        let root = seed(n);
        let signing = seed(n + 1);
        let cert = certificate(&root, &signing, 1, T0, T0.plus(30 * DAY), vec![]);
        Self {
            root,
            signing,
            cert,
        }
    }

    pub fn public(&self) -> PublicKey {
        self.root.public()
    }

    pub fn cert_id(&self) -> CertId {
        CertId::of(&self.cert)
    }

    pub fn policy(&self) -> TrustPolicy {
        let mut p = TrustPolicy::new();
        p.trust(self.public(), "test-publisher").unwrap();
        p.learn_certificate(&self.cert)
            .expect("fixture certificate verifies");
        p
    }

    pub fn manifest(&self, sequence: u64, body: &[u8], signed_at: Timestamp) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            publisher: self.public(),
            certificate: self.cert_id(),
            story: StoryId([7; 16]),
            version: 1,
            kind: Kind::Story,
            sequence,
            supersedes: None,
            signed_at,
            metadata: Metadata {
                title: "Тестовая статья".into(),
                language: "ru".into(),
                authors: vec!["A. Author".into()],
                section: Some("News".into()),
                published: signed_at,
                updated: None,
                original_url: Some("https://example.org/story".into()),
                summary: Some("Summary".into()),
            },
            entries: vec![Entry {
                path: BODY_PATH.into(),
                media_type: BODY_MEDIA_TYPE.into(),
                size: body.len() as u64,
                hash: BlobHash::of(body),
            }],
        }
    }

    pub fn signed_manifest(&self, sequence: u64, body: &[u8], signed_at: Timestamp) -> Vec<u8> {
        self.manifest(sequence, body, signed_at)
            .sign(&self.signing)
            .unwrap()
    }

    pub fn head(&self, sequence: u64, issued_at: Timestamp) -> Vec<u8> {
        Head {
            format: FORMAT_VERSION,
            publisher: self.public(),
            certificate: self.cert_id(),
            sequence,
            issued_at,
            expires_at: issued_at.plus(7 * DAY),
        }
        .sign(&self.signing)
        .unwrap()
    }

    pub fn revocation(&self, key: PublicKey, effective_from: Timestamp) -> Vec<u8> {
        Revocation {
            format: FORMAT_VERSION,
            publisher: self.public(),
            key,
            effective_from,
            issued_at: effective_from,
            reason: "test".into(),
            last_sequence: None,
        }
        .sign(&self.root)
        .unwrap()
    }

    /// A revocation with a sequence cut-off (format 2).
    pub fn revocation_cut(
        &self,
        key: PublicKey,
        effective_from: Timestamp,
        last_sequence: u64,
    ) -> Vec<u8> {
        Revocation {
            format: REVOCATION_FORMAT_CUTOFF,
            publisher: self.public(),
            key,
            effective_from,
            issued_at: effective_from,
            reason: "stolen".into(),
            last_sequence: Some(last_sequence),
        }
        .sign(&self.root)
        .unwrap()
    }

    /// A complete bundle file with one body blob.
    pub fn bundle_file(&self, sequence: u64, body: &[u8]) -> BundleFile {
        BundleFile {
            certificates: vec![self.cert.clone()],
            revocations: vec![],
            heads: vec![self.head(sequence, T0.plus(60))],
            manifest: self.signed_manifest(sequence, body, T0.plus(60)),
            blobs: vec![body.to_vec()],
        }
    }
}

pub fn certificate(
    root: &SecretKey,
    signing: &SecretKey,
    serial: u64,
    not_before: Timestamp,
    not_after: Timestamp,
    languages: Vec<String>,
) -> Vec<u8> {
    KeyCertificate {
        format: FORMAT_VERSION,
        publisher: root.public(),
        signing_key: signing.public(),
        serial,
        not_before,
        not_after,
        scope: Scope { languages },
    }
    .sign(root)
    .unwrap()
}

/// A policy that trusts the publisher but knows none of its certificates.
pub fn bare_policy(p: &Publisher) -> TrustPolicy {
    let mut policy = TrustPolicy::new();
    policy.trust(p.public(), "test-publisher").unwrap();
    policy
}

pub fn now() -> Timestamp {
    T0.plus(DAY)
}

/// A version of a story, signed and verified, ready for a store.
pub struct StoryVersion<'a> {
    pub publisher: &'a Publisher,
    pub sequence: u64,
    pub story: StoryId,
    pub version: u32,
    pub kind: Kind,
    pub supersedes: Option<BundleId>,
    pub published: Timestamp,
    pub language: &'a str,
    pub blobs: Vec<Vec<u8>>,
}

impl StoryVersion<'_> {
    pub fn signed(&self) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut m = self.publisher.manifest(
            self.sequence,
            &self.blobs[0],
            self.published.plus(self.version as u64),
        );
        m.story = self.story;
        m.version = self.version;
        m.kind = self.kind;
        m.supersedes = self.supersedes;
        m.metadata.published = self.published;
        m.metadata.language = self.language.into();
        m.metadata.title = format!("Story {} v{}", self.story.short(), self.version);
        for (i, b) in self.blobs.iter().enumerate().skip(1) {
            m.entries.push(Entry {
                path: format!("media/{i}.png"),
                media_type: "image/png".into(),
                size: b.len() as u64,
                hash: BlobHash::of(b),
            });
        }
        (m.sign(&self.publisher.signing).unwrap(), self.blobs.clone())
    }

    pub fn verified(&self) -> VerifiedBundle {
        let (m, blobs) = self.signed();
        let policy = self.publisher.policy();
        let vm = policy.verify_manifest(&m, now().plus(400 * DAY)).unwrap();
        policy.verify_bundle(vm, blobs).unwrap()
    }
}

impl StoryVersion<'_> {
    /// This version as a bundle file carrying the publisher's certificate
    /// and `heads`, with the bundle's id.
    pub fn bundle_file(&self, heads: Vec<Vec<u8>>) -> (BundleFile, BundleId) {
        let (manifest, blobs) = self.signed();
        let id = BundleId::of(&manifest);
        let file = BundleFile {
            certificates: vec![self.publisher.cert.clone()],
            revocations: vec![],
            heads,
            manifest,
            blobs,
        };
        (file, id)
    }
}

/// The stored bundle `id` is there, whole, and verifies under `policy`.
pub fn assert_stored_verifies(store: &Store, policy: &TrustPolicy, id: &BundleId) {
    let m = store
        .manifest(id)
        .unwrap()
        .unwrap_or_else(|| panic!("bundle {id} is missing"));
    let v = policy
        .verify_manifest(&m.bytes, now().plus(400 * DAY))
        .unwrap();
    let blobs = v
        .entries
        .iter()
        .map(|e| store.blob(&e.hash).unwrap().unwrap())
        .collect();
    policy.verify_bundle(v, blobs).unwrap();
}

/// Puts `p`'s certificate, verified, into `store`, so that bundles its
/// signing key signed can be ingested.
pub fn store_certificate(store: &Store, p: &Publisher) {
    let cert = p.policy().verify_certificate(&p.cert).unwrap();
    store.put_certificate(&cert).unwrap();
}

/// Version 1 of story `n`, with sequence `seq`, published at T0 + n hours.
pub fn story<'a>(p: &'a Publisher, seq: u64, n: u8, body: &[u8]) -> StoryVersion<'a> {
    StoryVersion {
        publisher: p,
        sequence: seq,
        story: StoryId([n; 16]),
        version: 1,
        kind: Kind::Story,
        supersedes: None,
        published: T0.plus(n as u64 * 3600),
        language: "en",
        blobs: vec![body.to_vec()],
    }
}

/// An archive of `n` bundles of publisher `p`, sequence 1..=n, each with a
/// body of `body_len` bytes, plus its certificate and a head.
pub fn archive(p: &Publisher, n: u64, body_len: usize) -> Vec<u8> {
    use kolokol::proto::bundle::{FileKind, FrameTag, FrameWriter};
    let mut w = FrameWriter::new(Vec::new(), FileKind::Archive).unwrap();
    w.write_frame(FrameTag::Certificate, &p.cert).unwrap();
    for seq in 1..=n {
        let mut body: Vec<u8> = (0..body_len)
            .map(|i| (i as u64 ^ seq.wrapping_mul(2654435761)) as u8)
            .collect();
        // Distinct bodies, so each bundle has a blob of its own.
        for (b, x) in body.iter_mut().zip(seq.to_le_bytes()) {
            *b = x;
        }
        let mut s = story(p, seq, 0, &body);
        s.story = StoryId(
            *blake3::hash(&seq.to_le_bytes())
                .as_bytes()
                .first_chunk::<16>()
                .unwrap(),
        );
        s.published = T0.plus(seq);
        let (m, blobs) = s.signed();
        w.write_frame(FrameTag::Manifest, &m).unwrap();
        for b in blobs {
            w.write_frame(FrameTag::Blob, &b).unwrap();
        }
    }
    w.write_frame(FrameTag::Head, &p.head(n, T0.plus(3600)))
        .unwrap();
    w.finish().unwrap()
}

/// The trust list's entry for `p` under `name`, with nothing else set.
pub fn publisher_file(p: &Publisher, name: &str) -> kolokol::trust::PublisherFile {
    kolokol::trust::PublisherFile {
        name: name.into(),
        display_name: None,
        root_key: p.public(),
        homepage: None,
        bootstrap: vec![],
        demo: false,
        mirror_list: None,
        mirror_certificate: None,
    }
}

/// A publisher file for `p`, for a data directory's trust list.
pub fn trust_file(p: &Publisher, name: &str) -> String {
    format!("name = \"{name}\"\nroot_key = \"{}\"\n", p.public())
}

/// A story with its own id (its sequence number and its publisher's first
/// key byte), sequence `seq`, and a body of `len` bytes.
pub fn numbered(p: &Publisher, seq: u64, len: usize) -> StoryVersion<'_> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    id[8] = p.public().as_bytes()[0];
    let mut body = format!("<p>Story {seq}</p>").into_bytes();
    body.resize(len.max(body.len()), b'.');
    StoryVersion {
        publisher: p,
        sequence: seq,
        story: StoryId(id),
        version: 1,
        kind: Kind::Story,
        supersedes: None,
        published: T0.plus(seq * 60),
        language: "en",
        blobs: vec![body],
    }
}

/// A head for `seq`, issued later the higher the number.
pub fn numbered_head(p: &Publisher, seq: u64) -> Vec<u8> {
    p.head(seq, T0.plus(3600 + seq))
}

/// An honest answer to a fetch `request` for `blob`, as a mirror gives
/// it: the outboard, a range, or a chunk from an offset.
pub fn answer_fetch(
    blob: &[u8],
    request: &kolokol::net::wire::FetchRequest,
) -> kolokol::net::wire::FetchResponse {
    use kolokol::net::wire::{CHUNK, FetchRequest, FetchResponse};
    let (offset, len) = match *request {
        FetchRequest::Outboard { .. } => {
            return FetchResponse::Outboard {
                total: blob.len() as u64,
                data: kolokol::proto::pieces::Outboard::compute(blob).encode(),
            };
        }
        FetchRequest::Blob { offset, .. } => (offset, CHUNK),
        FetchRequest::Range { offset, len, .. } => (offset, u64::from(len).min(CHUNK)),
    };
    let start = (offset as usize).min(blob.len());
    let end = (start + len as usize).min(blob.len());
    FetchResponse::Chunk {
        total: blob.len() as u64,
        offset: start as u64,
        data: blob[start..end].to_vec(),
    }
}
