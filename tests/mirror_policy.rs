//! The mirror list under the trust policy, and its golden encoding.

mod common;

use common::mirrors::*;
use common::*;
use kolokol::proto::mirrors::{MAX_MIRROR_ADDRS, MAX_MIRROR_LIST_BYTES};
use kolokol::proto::*;

fn addr(port: u16) -> String {
    format!("/ip4/192.0.2.1/tcp/{port}/p2p/{PEER}")
}

#[test]
fn a_valid_list_verifies_with_its_addresses() {
    let p = Publisher::new(1);
    let bytes = signed_list(
        &p,
        T0.plus(10),
        vec![addr(4001)],
        vec!["https://cdn.example/k".into()],
    );
    let v = p.policy().verify_mirror_list(&bytes, now()).unwrap();
    assert_eq!(v.libp2p, vec![addr(4001)]);
    assert_eq!(v.https, vec!["https://cdn.example/k".to_string()]);
    assert_eq!(v.bytes(), &bytes[..]);
    assert!(!v.is_expired(now()));
}

#[test]
fn golden_encoding() {
    let p = Publisher::new(1);
    let bytes = signed_list(
        &p,
        T0,
        vec![addr(4001)],
        vec!["https://cdn.example/k".into()],
    );
    let (body, _sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    // format 1, the root key, the certificate id, issued_at, expires_at,
    // then the two lists, each a length and its strings.
    assert_eq!(body[0], 1);
    assert_eq!(&body[1..33], p.public().as_bytes());
    assert_eq!(hex::encode(body), GOLDEN_MIRROR_LIST_BODY);
    // ed25519 is deterministic: the whole object is fixed too.
    assert_eq!(
        blake3::hash(&bytes).to_hex().to_string(),
        GOLDEN_MIRROR_LIST_HASH
    );
}

const GOLDEN_MIRROR_LIST_BODY: &str = "018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c5cb5729ca65fe2d5faaf03dea9b3c4546ee1b10160e12115cc9a68adf76c155180c3bbc20680ddd9c30601502f6970342f3139322e302e322e312f7463702f343030312f7032702f313244334b6f6f57443365636b69665770526e397751704d4739523968583373443135387a37457148576d776551414a55355341011568747470733a2f2f63646e2e6578616d706c652f6b";
const GOLDEN_MIRROR_LIST_HASH: &str =
    "ed227d93660c211d8e272ffcace1827fdca51c39bd509cb559aa0e569cf02549";

#[test]
fn signed_by_an_uncertified_key() {
    let p = Publisher::new(1);
    let other = seed(9);
    let bytes = list(&p, T0.plus(10), vec![addr(1)], vec![])
        .sign(&other)
        .unwrap();
    let err = p.policy().verify_mirror_list(&bytes, now()).unwrap_err();
    assert!(matches!(err, PolicyError::BadSignature { .. }), "{err}");
}

#[test]
fn untrusted_publisher() {
    let p = Publisher::new(1);
    let stranger = Publisher::new(5);
    let bytes = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    let err = stranger
        .policy()
        .verify_mirror_list(&bytes, now())
        .unwrap_err();
    assert!(matches!(err, PolicyError::UnknownPublisher { .. }), "{err}");
    // Known publisher, certificate not yet learned.
    let err = bare_policy(&p)
        .verify_mirror_list(&bytes, now())
        .unwrap_err();
    assert!(
        matches!(err, PolicyError::UnknownCertificate { .. }),
        "{err}"
    );
}

#[test]
fn revoked_key_whatever_time_the_list_claims() {
    let p = Publisher::new(1);
    let mut policy = p.policy();
    policy
        .learn_revocation(&p.revocation(p.signing.public(), T0.plus(100)))
        .unwrap();
    // Backdated before the revocation: still refused.
    let bytes = signed_list(&p, T0.plus(50), vec![addr(1)], vec![]);
    let err = policy.verify_mirror_list(&bytes, now()).unwrap_err();
    assert!(matches!(err, PolicyError::KeyRevoked { .. }), "{err}");
}

#[test]
fn outside_the_certificate_window_or_in_the_future() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let bytes = signed_list(&p, T0.plus(31 * DAY), vec![addr(1)], vec![]);
    let err = policy
        .verify_mirror_list(&bytes, T0.plus(31 * DAY))
        .unwrap_err();
    assert!(
        matches!(err, PolicyError::CertificateExpired { .. }),
        "{err}"
    );
    let bytes = signed_list(&p, now().plus(3600), vec![addr(1)], vec![]);
    let err = policy.verify_mirror_list(&bytes, now()).unwrap_err();
    assert!(matches!(err, PolicyError::SignedInFuture { .. }), "{err}");
}

#[test]
fn expired_lists_verify_but_say_so() {
    let p = Publisher::new(1);
    let bytes = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    let later = T0.plus(31 * DAY);
    let v = p.policy().verify_mirror_list(&bytes, later).unwrap();
    assert!(v.is_expired(later));
    // A newer list replaces it, an older one does not.
    let newer = list(&p, T0.plus(20), vec![], vec![]);
    assert!(newer.replaces(&v));
    assert!(!v.replaces(&newer));
    assert!(!v.replaces(&v));
}

#[test]
fn a_list_valid_for_too_long_is_refused() {
    let p = Publisher::new(1);
    let mut l = list(&p, T0.plus(10), vec![addr(1)], vec![]);
    l.expires_at = l.issued_at.plus(367 * DAY);
    assert!(l.sign(&p.signing).is_err());
    l.expires_at = l.issued_at.minus(1);
    assert!(l.sign(&p.signing).is_err());
}

#[test]
fn bad_addresses_and_urls_are_refused() {
    let p = Publisher::new(1);
    for (a, u) in [
        (vec!["/ip4/192.0.2.1/tcp/1".to_string()], vec![]),
        (vec![], vec!["http://cdn.example/".to_string()]),
        (vec![], vec!["https://u@cdn.example/".to_string()]),
    ] {
        let l = list(&p, T0.plus(10), a, u);
        let err = l.sign(&p.signing).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidField { .. }), "{err}");
    }
    let l = list(
        &p,
        T0.plus(10),
        (0..MAX_MIRROR_ADDRS as u16 + 1).map(addr).collect(),
        vec![],
    );
    let err = l.sign(&p.signing).unwrap_err();
    assert!(matches!(err, PolicyError::FieldTooLarge { .. }), "{err}");
}

#[test]
fn oversize_and_other_domains_are_refused() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let big = vec![0u8; MAX_MIRROR_LIST_BYTES + 1];
    let err = policy.verify_mirror_list(&big, now()).unwrap_err();
    assert!(
        matches!(err, PolicyError::Decode(DecodeError::TooLarge { .. })),
        "{err}"
    );
    // A head's bytes are not a mirror list, even from the same key.
    let head = p.head(1, T0.plus(10));
    assert!(policy.verify_mirror_list(&head, now()).is_err());
    // A flipped byte breaks the signature.
    let mut bytes = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let err = policy.verify_mirror_list(&bytes, now()).unwrap_err();
    assert!(matches!(err, PolicyError::BadSignature { .. }), "{err}");
}
