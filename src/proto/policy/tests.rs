//! What the policy reports when it learns a revocation.

use super::*;
use crate::proto::objects::{FORMAT_VERSION, REVOCATION_FORMAT_CUTOFF, Scope};
use crate::proto::{CertId, SecretKey};

const T0: Timestamp = Timestamp(1_700_000_000);

struct Fixture {
    root: SecretKey,
    signing: SecretKey,
    cert: Vec<u8>,
    policy: TrustPolicy,
}

fn certificate(root: &SecretKey, signing: &SecretKey, serial: u64) -> Vec<u8> {
    KeyCertificate {
        format: FORMAT_VERSION,
        publisher: root.public(),
        signing_key: signing.public(),
        serial,
        not_before: T0,
        not_after: T0.plus(30 * 86_400),
        scope: Scope::default(),
    }
    .sign(root)
    .unwrap()
}

fn fixture() -> Fixture {
    let root = SecretKey::from_seed(&[1; 32]);
    let signing = SecretKey::from_seed(&[2; 32]);
    let cert = certificate(&root, &signing, 1);
    let mut policy = TrustPolicy::new();
    policy.trust(root.public(), "test").unwrap();
    policy.learn_certificate(&cert).unwrap();
    Fixture {
        root,
        signing,
        cert,
        policy,
    }
}

impl Fixture {
    fn revocation(&self, key: &SecretKey, effective_from: Timestamp) -> Vec<u8> {
        Revocation {
            format: FORMAT_VERSION,
            publisher: self.root.public(),
            key: key.public(),
            effective_from,
            issued_at: effective_from,
            reason: "test".into(),
            last_sequence: None,
        }
        .sign(&self.root)
        .unwrap()
    }

    fn head(&self, key: &SecretKey, cert: &[u8], sequence: u64) -> Verified<Head> {
        let bytes = Head {
            format: FORMAT_VERSION,
            publisher: self.root.public(),
            certificate: CertId::of(cert),
            sequence,
            issued_at: T0.plus(10),
            expires_at: T0.plus(1000),
        }
        .sign(key)
        .unwrap();
        self.policy.verify_head(&bytes, T0.plus(20)).unwrap()
    }

    fn effective_from(&self) -> Option<Timestamp> {
        let trust = self.policy.publisher(&self.root.public())?;
        trust
            .revocations()
            .find(|r| r.key == self.signing.public())
            .map(|r| r.effective_from)
    }
}

#[test]
fn a_new_revocation_is_a_change_and_names_the_keys_certificates() {
    let mut f = fixture();
    let rev = f.revocation(&f.signing, T0.plus(100));
    let change = f.policy.learn_revocation(&rev).unwrap();
    assert!(change.changed);
    assert_eq!(change.certificates, [CertId::of(&f.cert)]);
    assert!(!change.head_dropped, "there was no head to drop");
    assert_eq!(change.revocation.bytes(), rev.as_slice());
    assert_eq!(f.effective_from(), Some(T0.plus(100)));
}

#[test]
fn an_earlier_revocation_widens_a_later_one_narrower_or_equal_is_ignored() {
    let mut f = fixture();
    let first = f.revocation(&f.signing, T0.plus(100));
    assert!(f.policy.learn_revocation(&first).unwrap().changed);
    let narrower = f.revocation(&f.signing, T0.plus(500));
    let change = f.policy.learn_revocation(&narrower).unwrap();
    assert!(!change.changed, "a later effective time narrows nothing");
    assert_eq!(change.certificates, [CertId::of(&f.cert)]);
    assert!(!f.policy.learn_revocation(&first).unwrap().changed);
    assert_eq!(f.effective_from(), Some(T0.plus(100)));
    let wider = f.revocation(&f.signing, T0.plus(50));
    assert!(f.policy.learn_revocation(&wider).unwrap().changed);
    assert_eq!(f.effective_from(), Some(T0.plus(50)));
}

#[test]
fn a_head_signed_by_the_revoked_key_is_dropped() {
    let mut f = fixture();
    let head = f.head(&f.signing, &f.cert, 1_000_000);
    assert!(f.policy.accept_head(head));
    let rev = f.revocation(&f.signing, T0.plus(100));
    let change = f.policy.learn_revocation(&rev).unwrap();
    assert!(change.changed && change.head_dropped);
    assert!(
        f.policy
            .publisher(&f.root.public())
            .unwrap()
            .head()
            .is_none()
    );
}

#[test]
fn a_head_of_another_key_stays() {
    let mut f = fixture();
    let other = SecretKey::from_seed(&[3; 32]);
    let other_cert = certificate(&f.root, &other, 2);
    f.policy.learn_certificate(&other_cert).unwrap();
    let head = f.head(&other, &other_cert, 7);
    assert!(f.policy.accept_head(head));
    let change = f
        .policy
        .learn_revocation(&f.revocation(&f.signing, T0.plus(100)))
        .unwrap();
    assert!(change.changed && !change.head_dropped);
    assert_eq!(change.certificates, [CertId::of(&f.cert)]);
    let trusted = f.policy.publisher(&f.root.public()).unwrap().head();
    assert_eq!(trusted.map(|h| h.sequence), Some(7));
}

#[test]
fn a_revocation_of_a_publisher_no_longer_trusted_changes_nothing() {
    let mut f = fixture();
    let rev = f
        .policy
        .verify_revocation(&f.revocation(&f.signing, T0.plus(100)))
        .unwrap();
    f.policy.untrust(&f.root.public());
    let change = f.policy.add_revocation(rev);
    assert!(!change.changed && !change.head_dropped);
    assert!(change.certificates.is_empty());
}

#[test]
fn a_change_covers_its_certificates_from_the_effective_time() {
    let mut f = fixture();
    let change = f
        .policy
        .learn_revocation(&f.revocation(&f.signing, T0.plus(100)))
        .unwrap();
    let cert = CertId::of(&f.cert);
    assert!(!change.covers(&cert, 1, T0.plus(99)));
    assert!(change.covers(&cert, 1, T0.plus(100)));
    assert!(change.covers(&cert, 1, T0.plus(5000)));
    assert!(!change.covers(&CertId([7; 32]), 1, T0.plus(5000)));
}

fn cut_off(f: &Fixture, effective_from: Timestamp, last: u64) -> Vec<u8> {
    Revocation {
        format: REVOCATION_FORMAT_CUTOFF,
        publisher: f.root.public(),
        key: f.signing.public(),
        effective_from,
        issued_at: effective_from,
        reason: "test".into(),
        last_sequence: Some(last),
    }
    .sign(&f.root)
    .unwrap()
}

#[test]
fn a_cut_off_refuses_every_higher_sequence_whatever_time_it_claims() {
    let mut f = fixture();
    let change = f
        .policy
        .learn_revocation(&cut_off(&f, T0.plus(100), 5))
        .unwrap();
    let cert = CertId::of(&f.cert);
    // Backdated far before the effective time, but above the cut-off.
    assert!(change.covers(&cert, 6, T0.plus(1)));
    assert!(!change.covers(&cert, 5, T0.plus(1)));
    assert!(change.covers(&cert, 5, T0.plus(100)));
}

#[test]
fn a_revocation_replaces_another_only_when_it_widens_it() {
    let mut f = fixture();
    // Format 1, time only; then the same time with a cut-off widens it.
    let first = f.revocation(&f.signing, T0.plus(100));
    assert!(f.policy.learn_revocation(&first).unwrap().changed);
    assert!(
        f.policy
            .learn_revocation(&cut_off(&f, T0.plus(100), 9))
            .unwrap()
            .changed
    );
    // A higher cut-off or a later time would narrow it.
    assert!(
        !f.policy
            .learn_revocation(&cut_off(&f, T0.plus(100), 10))
            .unwrap()
            .changed
    );
    assert!(
        !f.policy
            .learn_revocation(&cut_off(&f, T0.plus(101), 3))
            .unwrap()
            .changed
    );
    assert!(!f.policy.learn_revocation(&first).unwrap().changed);
    assert!(
        f.policy
            .learn_revocation(&cut_off(&f, T0.plus(100), 3))
            .unwrap()
            .changed
    );
    let kept = f
        .policy
        .publisher(&f.root.public())
        .unwrap()
        .revocations()
        .next()
        .unwrap();
    assert_eq!(kept.last_sequence, Some(3));
}

#[test]
fn format_1_revocations_decode_as_before_and_format_2_carries_its_cut_off() {
    let f = fixture();
    let v1 = f.revocation(&f.signing, T0.plus(100));
    let v2 = cut_off(&f, T0.plus(100), 300);
    // The same fields, plus the cut-off's varint (`ac 02`) at the end of
    // the body, and the format byte.
    let body = |b: &[u8]| b[..b.len() - 64].to_vec();
    let (b1, b2) = (body(&v1), body(&v2));
    assert_eq!(b1[0], 1);
    assert_eq!(b2[0], 2);
    assert_eq!(&b2[b2.len() - 2..], &[0xac, 0x02]);
    assert_eq!(b1.len() + 2, b2.len());
    assert_eq!(f.policy.verify_revocation(&v1).unwrap().last_sequence, None);
    assert_eq!(
        f.policy.verify_revocation(&v2).unwrap().last_sequence,
        Some(300)
    );
    // Format 2 without its cut-off, or format 1 with one, is refused.
    for (format, last) in [(2, None), (1, Some(3)), (3, Some(3))] {
        let bytes = Revocation {
            format,
            publisher: f.root.public(),
            key: f.signing.public(),
            effective_from: T0,
            issued_at: T0,
            reason: String::new(),
            last_sequence: last,
        };
        assert!(bytes.validate().is_err(), "{format} {last:?}");
    }
}
