//! One test per rejection rule of the trust policy, each asserting the
//! error variant.

mod common;

use common::*;
use kolokol::proto::*;

const BODY: &[u8] = b"<p>body</p>";

#[test]
fn accepts_a_valid_manifest_and_bundle() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let m = policy
        .verify_manifest(&p.signed_manifest(1, BODY, T0.plus(10)), now())
        .unwrap();
    assert_eq!(m.sequence, 1);
    let b = policy.verify_bundle(m, vec![BODY.to_vec()]).unwrap();
    assert_eq!(b.blobs().count(), 1);
}

#[test]
fn unknown_publisher() {
    let p = Publisher::new(1);
    let other = Publisher::new(10);
    let err = other
        .policy()
        .verify_manifest(&p.signed_manifest(1, BODY, T0), now())
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::UnknownPublisher {
            publisher: p.public()
        }
    );
    let err = other.policy().verify_certificate(&p.cert).unwrap_err();
    assert!(matches!(err, PolicyError::UnknownPublisher { .. }));
}

#[test]
fn key_without_certificate() {
    let p = Publisher::new(1);
    let err = bare_policy(&p)
        .verify_manifest(&p.signed_manifest(1, BODY, T0), now())
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::UnknownCertificate {
            certificate: p.cert_id()
        }
    );
}

#[test]
fn signature_by_uncertified_key() {
    let p = Publisher::new(1);
    // Names the real certificate but is signed by another key.
    let bytes = p.manifest(1, BODY, T0).sign(&seed(99)).unwrap();
    let err = p.policy().verify_manifest(&bytes, now()).unwrap_err();
    assert_eq!(err, PolicyError::BadSignature { what: "manifest" });
}

#[test]
fn certificate_signed_by_another_root() {
    let p = Publisher::new(1);
    let forged = KeyCertificate {
        format: FORMAT_VERSION,
        publisher: p.public(),
        signing_key: seed(50).public(),
        serial: 2,
        not_before: T0,
        not_after: T0.plus(DAY),
        scope: Scope::default(),
    }
    .sign(&seed(77))
    .unwrap();
    let err = p.policy().verify_certificate(&forged).unwrap_err();
    assert_eq!(
        err,
        PolicyError::BadSignature {
            what: "key certificate"
        }
    );
}

#[test]
fn certificate_from_another_publisher() {
    let a = Publisher::new(1);
    let b = Publisher::new(20);
    let mut policy = a.policy();
    policy.trust(b.public(), "b").unwrap();
    policy.learn_certificate(&b.cert).unwrap();
    // A manifest claiming publisher A but naming B's certificate, signed by B's key.
    let mut m = a.manifest(1, BODY, T0);
    m.certificate = b.cert_id();
    let bytes = m.sign(&b.signing).unwrap();
    let err = policy.verify_manifest(&bytes, now()).unwrap_err();
    assert_eq!(
        err,
        PolicyError::CertificateFromOtherPublisher {
            certificate: b.cert_id(),
            publisher: a.public(),
            certificate_publisher: b.public()
        }
    );
}

#[test]
fn expired_certificate() {
    let p = Publisher::new(1);
    let late = T0.plus(31 * DAY);
    let err = p
        .policy()
        .verify_manifest(&p.signed_manifest(1, BODY, late), late)
        .unwrap_err();
    assert!(
        matches!(err, PolicyError::CertificateExpired { .. }),
        "{err}"
    );
}

#[test]
fn not_yet_valid_certificate() {
    let p = Publisher::new(1);
    let early = T0.minus(DAY);
    let err = p
        .policy()
        .verify_manifest(&p.signed_manifest(1, BODY, early), now())
        .unwrap_err();
    assert!(
        matches!(err, PolicyError::CertificateNotYetValid { .. }),
        "{err}"
    );
}

#[test]
fn signed_in_the_future() {
    let p = Publisher::new(1);
    let future = now().plus(3600);
    let err = p
        .policy()
        .verify_manifest(&p.signed_manifest(1, BODY, future), now())
        .unwrap_err();
    assert!(matches!(err, PolicyError::SignedInFuture { .. }), "{err}");
    // Within the allowed clock skew it passes.
    let near = now().plus(60);
    p.policy()
        .verify_manifest(&p.signed_manifest(1, BODY, near), now())
        .unwrap();
}

#[test]
fn revoked_key_from_its_effective_time() {
    let p = Publisher::new(1);
    let mut policy = p.policy();
    policy
        .learn_revocation(&p.revocation(p.signing.public(), T0.plus(100)))
        .unwrap();
    // Signed before the revocation took effect: still valid.
    policy
        .verify_manifest(&p.signed_manifest(1, BODY, T0.plus(99)), now())
        .unwrap();
    // At and after: refused.
    for t in [T0.plus(100), T0.plus(5000)] {
        let err = policy
            .verify_manifest(&p.signed_manifest(2, BODY, t), now())
            .unwrap_err();
        assert!(matches!(err, PolicyError::KeyRevoked { .. }), "{err}");
    }
    // Heads by the revoked key are refused as well.
    let err = policy
        .verify_head(&p.head(2, T0.plus(200)), now())
        .unwrap_err();
    assert!(matches!(err, PolicyError::KeyRevoked { .. }), "{err}");
}

#[test]
fn a_revocation_can_be_widened_not_narrowed() {
    let p = Publisher::new(1);
    let mut policy = p.policy();
    policy
        .learn_revocation(&p.revocation(p.signing.public(), T0.plus(100)))
        .unwrap();
    policy
        .learn_revocation(&p.revocation(p.signing.public(), T0.plus(10_000)))
        .unwrap();
    let err = policy
        .verify_manifest(&p.signed_manifest(1, BODY, T0.plus(150)), now())
        .unwrap_err();
    assert!(matches!(err, PolicyError::KeyRevoked { .. }));
}

#[test]
fn revocation_signed_by_the_signing_key_is_refused() {
    let p = Publisher::new(1);
    let bytes = Revocation {
        format: FORMAT_VERSION,
        publisher: p.public(),
        key: p.signing.public(),
        effective_from: T0,
        issued_at: T0,
        reason: "x".into(),
        last_sequence: None,
    }
    .sign(&p.signing)
    .unwrap();
    assert_eq!(
        p.policy().verify_revocation(&bytes).unwrap_err(),
        PolicyError::BadSignature { what: "revocation" }
    );
}

#[test]
fn blob_hash_mismatch() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let m = policy
        .verify_manifest(&p.signed_manifest(1, BODY, T0), now())
        .unwrap();
    let err = policy
        .verify_bundle(m, vec![b"<p>bodY</p>".to_vec()])
        .unwrap_err();
    assert!(matches!(err, PolicyError::BlobHashMismatch { .. }), "{err}");
}

#[test]
fn blob_size_mismatch() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let m = policy
        .verify_manifest(&p.signed_manifest(1, BODY, T0), now())
        .unwrap();
    let err = policy
        .verify_bundle(m, vec![b"<p>body</p>!".to_vec()])
        .unwrap_err();
    assert!(
        matches!(
            err,
            PolicyError::BlobSizeMismatch {
                expected: 11,
                actual: 12,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_and_extra_blobs() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let m = policy
        .verify_manifest(&p.signed_manifest(1, BODY, T0), now())
        .unwrap();
    assert!(matches!(
        policy.verify_bundle(m.clone(), vec![]).unwrap_err(),
        PolicyError::MissingBlob { .. }
    ));
    let err = policy
        .verify_bundle(m, vec![BODY.to_vec(), BODY.to_vec()])
        .unwrap_err();
    assert_eq!(err, PolicyError::UnexpectedBlob { count: 1 });
}

#[test]
fn head_rollback() {
    let p = Publisher::new(1);
    let mut policy = p.policy();
    let h5 = policy.verify_head(&p.head(5, T0.plus(10)), now()).unwrap();
    assert!(policy.accept_head(h5));
    let err = policy
        .verify_head(&p.head(4, T0.plus(20)), now())
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::HeadRollback {
            trusted: 5,
            offered: 4
        }
    );
    // The same sequence, issued later, is a fresh heartbeat.
    let again = policy.verify_head(&p.head(5, T0.plus(30)), now()).unwrap();
    assert!(policy.accept_head(again));
    let h6 = policy.verify_head(&p.head(6, T0.plus(40)), now()).unwrap();
    assert!(policy.accept_head(h6));
}

#[test]
fn oversized_fields() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let mut m = p.manifest(1, BODY, T0);
    m.metadata.title = "x".repeat(limits::MAX_TITLE + 1);
    let err = policy
        .verify_manifest(&m.sign(&p.signing).unwrap(), now())
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::FieldTooLarge {
            field: "title",
            len: limits::MAX_TITLE + 1,
            max: limits::MAX_TITLE
        }
    );

    let mut m = p.manifest(1, BODY, T0);
    m.metadata.authors = vec!["a".into(); limits::MAX_AUTHORS + 1];
    let err = policy
        .verify_manifest(&m.sign(&p.signing).unwrap(), now())
        .unwrap_err();
    assert!(matches!(
        err,
        PolicyError::FieldTooLarge {
            field: "authors",
            ..
        }
    ));

    let mut m = p.manifest(1, BODY, T0);
    m.entries[0].size = limits::MAX_BLOB_BYTES + 1;
    let err = policy
        .verify_manifest(&m.sign(&p.signing).unwrap(), now())
        .unwrap_err();
    assert!(matches!(
        err,
        PolicyError::FieldTooLarge {
            field: "entry size",
            ..
        }
    ));
}

#[test]
fn oversized_object_is_refused_before_decoding() {
    let p = Publisher::new(1);
    let huge = vec![0u8; limits::MAX_MANIFEST_BYTES + 1];
    let err = p.policy().verify_manifest(&huge, now()).unwrap_err();
    assert!(
        matches!(err, PolicyError::Decode(DecodeError::TooLarge { .. })),
        "{err}"
    );
    // Signing refuses to produce one, too.
    let mut m = p.manifest(1, BODY, T0);
    m.metadata.summary = Some("s".repeat(limits::MAX_MANIFEST_BYTES));
    assert!(matches!(
        m.sign(&p.signing),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn out_of_scope_language() {
    let p = Publisher::new(1);
    let scoped = certificate(
        &p.root,
        &p.signing,
        2,
        T0,
        T0.plus(DAY * 30),
        vec!["en".into()],
    );
    let mut policy = bare_policy(&p);
    policy.learn_certificate(&scoped).unwrap();
    let mut m = p.manifest(1, BODY, T0);
    m.certificate = CertId::of(&scoped);
    let err = policy
        .verify_manifest(&m.sign(&p.signing).unwrap(), now())
        .unwrap_err();
    assert!(matches!(err, PolicyError::OutOfScope { .. }), "{err}");
    m.metadata.language = "en".into();
    policy
        .verify_manifest(&m.sign(&p.signing).unwrap(), now())
        .unwrap();
}

type Mutation = Box<dyn Fn(&mut Manifest)>;

#[test]
fn invalid_structure() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|m| m.version = 2), "supersedes"),
        (
            // A version above the sequence number: no publisher has made
            // that many bundles.
            Box::new(|m| {
                m.version = 2;
                m.supersedes = Some(BundleId([1; 32]));
            }),
            "version",
        ),
        (
            Box::new(|m| m.supersedes = Some(BundleId([1; 32]))),
            "supersedes",
        ),
        (Box::new(|m| m.kind = Kind::Retraction), "kind"),
        (Box::new(|m| m.sequence = 0), "sequence"),
        (
            Box::new(|m| m.entries[0].path = "body.html".into()),
            "entries",
        ),
        (
            Box::new(|m| {
                m.entries.push(Entry {
                    path: "../etc/passwd".into(),
                    ..m.entries[0].clone()
                })
            }),
            "entry path",
        ),
        (
            Box::new(|m| m.entries.push(m.entries[0].clone())),
            "entry path",
        ),
        (Box::new(|m| m.metadata.language = "r u".into()), "language"),
        (Box::new(|m| m.metadata.title = "  ".into()), "title"),
    ];
    for (mutate, field) in cases {
        let mut m = p.manifest(1, BODY, T0);
        mutate(&mut m);
        let err = policy
            .verify_manifest(&m.sign(&p.signing).unwrap(), now())
            .unwrap_err();
        assert!(
            matches!(err, PolicyError::InvalidField { field: f, .. } if f == field),
            "{field}: {err}"
        );
    }
}

#[test]
fn signature_domains_are_separate() {
    // A head's signature must not verify as anything else.
    let p = Publisher::new(1);
    let head = p.head(1, T0);
    let err = p.policy().verify_manifest(&head, now()).unwrap_err();
    assert!(
        matches!(
            err,
            PolicyError::Decode(_) | PolicyError::BadSignature { .. }
        ),
        "{err}"
    );
}

#[test]
fn batch_agrees_with_single_checks() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let mut items: Vec<Vec<u8>> = (1..=40)
        .map(|s| p.signed_manifest(s, BODY, T0.plus(s)))
        .collect();
    // Corrupt a signature byte in one, make another unknown, another expired.
    let last = items[7].len() - 1;
    items[7][last] ^= 1;
    items[13] = Publisher::new(60).signed_manifest(1, BODY, T0);
    items[21] = p.signed_manifest(22, BODY, T0.plus(40 * DAY));
    let refs: Vec<&[u8]> = items.iter().map(|v| v.as_slice()).collect();
    let batch = policy.verify_manifests(&refs, now().plus(60 * DAY));
    for (i, (got, bytes)) in batch.iter().zip(&items).enumerate() {
        let single = policy.verify_manifest(bytes, now().plus(60 * DAY));
        assert_eq!(
            got.as_ref().map(|v| v.id()).map_err(|e| e.clone()),
            single.map(|v| v.id()),
            "item {i}"
        );
    }
    assert!(batch[0].is_ok());
    assert!(batch[7].is_err() && batch[13].is_err() && batch[21].is_err());
    assert_eq!(batch.iter().filter(|r| r.is_ok()).count(), 37);
}

#[test]
fn weak_keys_are_refused() {
    // The identity point, a small-order key.
    let mut id = [0u8; 32];
    id[0] = 1;
    let text = format!("ed25519:{}", hex::encode(id));
    assert_eq!(text.parse::<PublicKey>(), Err(KeyError::Weak));
}

#[test]
fn mixed_order_keys_are_refused() {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    let honest = seed(3).public();
    let a = CompressedEdwardsY(*honest.as_bytes()).decompress().unwrap();
    // Adding the order-2 point (0, -1) gives a key with a torsion component.
    let mut t2 = [0xffu8; 32];
    t2[0] = 0xec;
    t2[31] = 0x7f;
    let t = CompressedEdwardsY(t2).decompress().unwrap();
    let mixed = (a + t).compress().to_bytes();
    let text = format!("ed25519:{}", hex::encode(mixed));
    assert_eq!(text.parse::<PublicKey>(), Err(KeyError::Weak));
    assert!(honest.to_string().parse::<PublicKey>().is_ok());
}

#[test]
fn a_revoked_keys_heads_are_refused_whatever_time_they_claim() {
    let p = Publisher::new(1);
    let mut policy = p.policy();
    // A thief's backdated head with a huge sequence, accepted before anyone knew.
    let stolen = policy
        .verify_head(&p.head(u64::MAX, T0.plus(5)), now())
        .unwrap();
    assert!(policy.accept_head(stolen));
    // Once the key is revoked (from later than the head claims), its heads
    // are refused and the false floor is gone.
    policy
        .learn_revocation(&p.revocation(p.signing.public(), T0.plus(1000)))
        .unwrap();
    assert!(policy.publisher(&p.public()).unwrap().head().is_none());
    let err = policy
        .verify_head(&p.head(u64::MAX, T0.plus(5)), now())
        .unwrap_err();
    assert!(matches!(err, PolicyError::KeyRevoked { .. }), "{err}");
    // The newsroom's new key issues real heads again.
    let new_key = seed(40);
    let cert = certificate(&p.root, &new_key, 2, T0, T0.plus(30 * DAY), vec![]);
    policy.learn_certificate(&cert).unwrap();
    let head = Head {
        format: FORMAT_VERSION,
        publisher: p.public(),
        certificate: CertId::of(&cert),
        sequence: 12,
        issued_at: T0.plus(2000),
        expires_at: T0.plus(3000),
    }
    .sign(&new_key)
    .unwrap();
    let h = policy.verify_head(&head, now()).unwrap();
    assert!(policy.accept_head(h));
}
