//! The simulated world: nodes, their stores, the events between them,
//! and the newsroom's signed stories.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

use super::Lie;
use crate::proto::{
    BODY_MEDIA_TYPE, BODY_PATH, BlobHash, BundleId, Entry, FORMAT_VERSION, Head, KeyCertificate,
    Kind, Manifest, Metadata, PublicKey, Scope, SecretKey, StoryId, Timestamp, TrustPolicy,
    VerifiedBundle,
};
use crate::sync::messages::{FetchRequest, FetchResponse, SyncRequest, SyncResponse};
use crate::sync::{State, Token};

pub(super) type Node = u32;

/// A node's store: bundles by id and by sequence number, blobs by hash.
#[derive(Default)]
pub(super) struct SimStore {
    pub(super) manifests: HashMap<BundleId, Vec<u8>>,
    pub(super) by_seq: BTreeMap<u64, BundleId>,
    pub(super) blobs: HashMap<BlobHash, Vec<u8>>,
    pub(super) manifest_of: HashMap<BundleId, Manifest>,
}

impl SimStore {
    pub(super) fn put(&mut self, b: &VerifiedBundle) -> bool {
        let m = b.manifest();
        if self.manifests.contains_key(&b.id()) || self.by_seq.contains_key(&m.sequence) {
            return false;
        }
        self.manifests.insert(b.id(), m.bytes().to_vec());
        self.manifest_of.insert(b.id(), m.value().clone());
        self.by_seq.insert(m.sequence, b.id());
        for (e, bytes) in b.blobs() {
            self.blobs.insert(e.hash, bytes.to_vec());
        }
        true
    }
}

pub(super) struct SimNode {
    pub(super) state: State<Node, u64>,
    pub(super) store: SimStore,
    pub(super) lie: Option<Lie>,
    pub(super) links: BTreeSet<Node>,
    pub(super) seen: HashSet<u64>,
    /// Gossip messages waiting for a verdict, with their bytes.
    pub(super) pending: HashMap<u64, (Arc<Vec<u8>>, String)>,
}

pub(super) enum Ev {
    Tick(Node),
    Link(Node, Node),
    Publish(u64),
    Gossip {
        to: Node,
        from: Node,
        id: u64,
        topic: String,
        data: Arc<Vec<u8>>,
    },
    FetchReq {
        to: Node,
        from: Node,
        token: Token,
        request: FetchRequest,
    },
    FetchResp {
        to: Node,
        token: Token,
        response: Result<FetchResponse, String>,
    },
    SyncReq {
        to: Node,
        from: Node,
        token: Token,
        request: SyncRequest,
    },
    SyncResp {
        to: Node,
        token: Token,
        response: Result<SyncResponse, String>,
    },
}

/// The newsroom's signed objects.
pub(super) struct Newsroom {
    pub(super) root: PublicKey,
    pub(super) cert: Vec<u8>,
    pub(super) bundles: Vec<(VerifiedBundle, Vec<u8>)>,
}

pub(super) const T0: Timestamp = Timestamp(1_750_000_000);
pub(super) const TICK: Duration = Duration::from_millis(250);

pub(super) fn newsroom(stories: u64, body_bytes: usize, rng: &mut StdRng) -> Option<Newsroom> {
    newsroom_of(1, stories, body_bytes, rng)
}

/// A newsroom whose root key comes from `seed` (and its signing key from
/// the next one).
pub(super) fn newsroom_of(
    seed: u8,
    stories: u64,
    body_bytes: usize,
    rng: &mut StdRng,
) -> Option<Newsroom> {
    let root = SecretKey::from_seed(&[seed; 32]);
    let signing = SecretKey::from_seed(&[seed.wrapping_add(1); 32]);
    let cert = KeyCertificate {
        format: FORMAT_VERSION,
        publisher: root.public(),
        signing_key: signing.public(),
        serial: 1,
        not_before: T0,
        not_after: T0.plus(365 * 86_400),
        scope: Scope::default(),
    }
    .sign(&root)
    .ok()?;
    let mut policy = TrustPolicy::new();
    policy.trust(root.public(), "sim").ok()?;
    policy.learn_certificate(&cert).ok()?;
    let mut bundles = Vec::new();
    for seq in 1..=stories {
        let mut blobs = vec![
            (0..body_bytes)
                .map(|_| rng.r#gen::<u8>())
                .collect::<Vec<u8>>(),
        ];
        if seq % 5 == 0 {
            blobs.push((0..300 * 1024).map(|i| (i as u64 * seq) as u8).collect());
        }
        let entries = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| Entry {
                path: if i == 0 {
                    BODY_PATH.into()
                } else {
                    format!("img{i}.jpg")
                },
                media_type: if i == 0 {
                    BODY_MEDIA_TYPE.into()
                } else {
                    "image/jpeg".into()
                },
                size: b.len() as u64,
                hash: BlobHash::of(b),
            })
            .collect();
        let signed_at = T0.plus(60 + seq);
        let manifest = Manifest {
            format: FORMAT_VERSION,
            publisher: root.public(),
            certificate: crate::proto::CertId::of(&cert),
            story: StoryId([seq as u8; 16]),
            version: 1,
            kind: Kind::Story,
            sequence: seq,
            supersedes: None,
            signed_at,
            metadata: Metadata {
                title: format!("Story {seq}"),
                language: "en".into(),
                authors: vec![],
                section: None,
                published: signed_at,
                updated: None,
                original_url: None,
                summary: None,
            },
            entries,
        }
        .sign(&signing)
        .ok()?;
        let head = Head {
            format: FORMAT_VERSION,
            publisher: root.public(),
            certificate: crate::proto::CertId::of(&cert),
            sequence: seq,
            issued_at: signed_at,
            expires_at: signed_at.plus(7 * 86_400),
        }
        .sign(&signing)
        .ok()?;
        let m = policy.verify_manifest(&manifest, T0.plus(86_400)).ok()?;
        let b = policy.verify_bundle(m, blobs).ok()?;
        bundles.push((b, head));
    }
    Some(Newsroom {
        root: root.public(),
        cert,
        bundles,
    })
}
