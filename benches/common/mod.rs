//! What the benchmarks that run nodes share: a publisher with a signing
//! key, stories of a 4 KiB body, stores holding them, and nodes on them.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use kolokol::net::{NetConfig, Network, NodeEvent};
use kolokol::proto::*;
use kolokol::store::Store;

/// The body of every story.
pub const BODY: usize = 4096;

pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

pub fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

pub struct Fixture {
    pub root: SecretKey,
    pub signing: SecretKey,
    pub cert: Vec<u8>,
    pub policy: TrustPolicy,
    /// Bytes of each story's body ([`BODY`] unless changed).
    pub body: usize,
}

impl Fixture {
    pub fn new() -> Self {
        let root = key(1);
        let signing = key(2);
        let cert = KeyCertificate {
            format: FORMAT_VERSION,
            publisher: root.public(),
            signing_key: signing.public(),
            serial: 1,
            not_before: now().minus(86_400),
            not_after: now().plus(86_400),
            scope: Scope::default(),
        }
        .sign(&root)
        .unwrap();
        let mut policy = TrustPolicy::new();
        policy.trust(root.public(), "bench").unwrap();
        policy.learn_certificate(&cert).unwrap();
        Self {
            root,
            signing,
            cert,
            policy,
            body: BODY,
        }
    }

    pub fn bundle(&self, seq: u64) -> (Vec<u8>, Vec<u8>) {
        let mut body = format!("<p>Story {seq}</p>").into_bytes();
        body.resize(self.body, b'.');
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&seq.to_be_bytes());
        let signed_at = now().minus(3600);
        let m = Manifest {
            format: FORMAT_VERSION,
            publisher: self.root.public(),
            certificate: CertId::of(&self.cert),
            story: StoryId(id),
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
                // A second apart, as a feed's stories are. Stories of
                // one second are the catalog index's worst case (its
                // blocks split only between seconds; benchmarks.md).
                published: signed_at.minus(2_000_000u64.saturating_sub(seq)),
                updated: None,
                original_url: None,
                summary: None,
            },
            entries: vec![Entry {
                path: BODY_PATH.into(),
                media_type: BODY_MEDIA_TYPE.into(),
                size: body.len() as u64,
                hash: BlobHash::of(&body),
            }],
        };
        (m.sign(&self.signing).unwrap(), body)
    }

    /// A store holding sequences 1..=n and a head for n; the bytes held.
    pub fn store(&self, store: &Store, n: u64) -> u64 {
        let cert = self.policy.verify_certificate(&self.cert).unwrap();
        store.put_certificate(&cert).unwrap();
        let mut bytes = 0;
        let mut batch = Vec::new();
        for seq in 1..=n {
            let (m, body) = self.bundle(seq);
            bytes += (m.len() + body.len()) as u64;
            let vm = self.policy.verify_manifest(&m, now()).unwrap();
            batch.push(self.policy.verify_bundle(vm, vec![body]).unwrap());
            if batch.len() == 1024 {
                store.ingest(&batch).unwrap();
                batch.clear();
            }
        }
        store.ingest(&batch).unwrap();
        self.record_head(store, n);
        bytes
    }

    /// Records a head for sequence `n` in `store`.
    pub fn record_head(&self, store: &Store, n: u64) {
        let head = Head {
            format: FORMAT_VERSION,
            publisher: self.root.public(),
            certificate: CertId::of(&self.cert),
            sequence: n,
            issued_at: now().minus(60),
            expires_at: now().plus(86_400),
        }
        .sign(&self.signing)
        .unwrap();
        let h = self.policy.verify_head(&head, now()).unwrap();
        store.record_head(&h).unwrap();
    }

    /// A node on `store`, syncing only when asked (catch-up measures).
    pub async fn node(&self, store: Arc<Store>) -> (Network, libp2p::Multiaddr) {
        let config = NetConfig {
            sync_interval_secs: 3600,
            ..NetConfig::for_tests()
        };
        self.node_with(store, config).await
    }

    /// A node on `store` with `config`, trusting this publisher.
    pub async fn node_with(
        &self,
        store: Arc<Store>,
        config: NetConfig,
    ) -> (Network, libp2p::Multiaddr) {
        let mut policy = TrustPolicy::new();
        policy.trust(self.root.public(), "bench").unwrap();
        store.load_trust(&mut policy, now()).unwrap();
        let node = Network::spawn(
            config,
            libp2p::identity::Keypair::generate_ed25519(),
            store,
            policy,
        )
        .await
        .unwrap();
        let addr = node
            .wait_listening(1, Duration::from_secs(10))
            .await
            .unwrap()
            .pop()
            .unwrap()
            .with(libp2p::multiaddr::Protocol::P2p(node.peer_id()));
        (node, addr)
    }
}

pub async fn wait_stored(events: &mut tokio::sync::broadcast::Receiver<NodeEvent>, n: u64) -> bool {
    let mut stored = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while stored < n {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(NodeEvent::Stored(_))) => stored += 1,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => return false,
        }
    }
    true
}
