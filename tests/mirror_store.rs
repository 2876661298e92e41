//! Mirror lists in the store: the newest per publisher, in the log, and
//! handed out only while the trust policy of the moment takes them.

mod common;

use common::mirrors::*;
use common::*;
use kolokol::proto::*;
use kolokol::store::{LogItem, LogObject, Store, StoreConfig, StoreError};

fn addr(port: u16) -> String {
    format!("/ip4/192.0.2.1/tcp/{port}/p2p/{PEER}")
}

fn store() -> Store {
    Store::memory(StoreConfig::default())
}

#[test]
fn the_newest_list_is_kept_and_an_older_one_never_replaces_it() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let s = store();
    let old = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    let new = signed_list(
        &p,
        T0.plus(20),
        vec![addr(2)],
        vec!["https://cdn.example/k".into()],
    );
    assert!(s.put_mirror_list(&old, &policy, now()).unwrap());
    assert!(s.put_mirror_list(&new, &policy, now()).unwrap());
    // The same again, and the older one after the newer: not stored.
    assert!(!s.put_mirror_list(&new, &policy, now()).unwrap());
    assert!(!s.put_mirror_list(&old, &policy, now()).unwrap());
    let (list, bytes) = s.mirror_list(&p.public()).unwrap().unwrap();
    assert_eq!(bytes, new);
    assert_eq!(list.libp2p, vec![addr(2)]);
    assert_eq!(s.mirror_lists().unwrap().len(), 1);
    assert_eq!(s.mirror_addresses(&policy, now()).unwrap(), vec![addr(2)]);
    assert_eq!(
        s.web_sources(&policy, now()).unwrap(),
        vec!["https://cdn.example/k".to_string()]
    );
}

#[test]
fn expired_forged_and_untrusted_lists_are_refused() {
    let p = Publisher::new(1);
    let s = store();
    let list = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    // Valid for 30 days from T0 + 10 s.
    let late = T0.plus(31 * DAY);
    let err = s.put_mirror_list(&list, &p.policy(), late).unwrap_err();
    assert!(matches!(err, StoreError::MirrorListExpired { .. }), "{err}");
    let stranger = Publisher::new(5);
    let err = s
        .put_mirror_list(&list, &stranger.policy(), now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MirrorList(PolicyError::UnknownPublisher { .. })
        ),
        "{err}"
    );
    let mut forged = list.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let err = s.put_mirror_list(&forged, &p.policy(), now()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MirrorList(PolicyError::BadSignature { .. })
        ),
        "{err}"
    );
    assert!(s.mirror_lists().unwrap().is_empty());
    assert_eq!(s.log_end().unwrap(), 0);
}

#[test]
fn a_new_list_is_a_log_entry_that_stands_for_the_newest() {
    let p = Publisher::new(1);
    let policy = p.policy();
    let s = store();
    let first = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    let second = signed_list(&p, T0.plus(20), vec![addr(2)], vec![]);
    s.put_mirror_list(&first, &policy, now()).unwrap();
    s.put_mirror_list(&first, &policy, now()).unwrap();
    assert_eq!(s.log_end().unwrap(), 1);
    s.put_mirror_list(&second, &policy, now()).unwrap();
    let items = s.log_items(0, 10).unwrap();
    assert_eq!(
        items,
        vec![
            (0, LogItem::MirrorList(p.public())),
            (1, LogItem::MirrorList(p.public()))
        ]
    );
    // Both entries stand for the newest list, with its certificate.
    for (_, item) in items {
        match s.log_object(&item).unwrap() {
            Some(LogObject::MirrorList(bytes, cert)) => {
                assert_eq!(bytes, second);
                assert_eq!(cert, p.cert_id());
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn lists_are_handed_out_only_while_the_policy_takes_them() {
    let p = Publisher::new(1);
    let q = Publisher::new(3);
    let mut policy = p.policy();
    policy.trust(q.public(), "other").unwrap();
    policy.learn_certificate(&q.cert).unwrap();
    let s = store();
    s.put_mirror_list(
        &signed_list(&p, T0.plus(10), vec![addr(1), addr(9)], vec![]),
        &policy,
        now(),
    )
    .unwrap();
    s.put_mirror_list(
        &signed_list(
            &q,
            T0.plus(10),
            vec![addr(9), addr(3)],
            vec!["https://q.example/".into()],
        ),
        &policy,
        now(),
    )
    .unwrap();
    let mut all = s.mirror_addresses(&policy, now()).unwrap();
    all.sort();
    assert_eq!(all, vec![addr(1), addr(3), addr(9)]);
    // Untrusted: its list stays stored and is not used.
    policy.untrust(&q.public());
    assert_eq!(
        s.mirror_addresses(&policy, now()).unwrap(),
        vec![addr(1), addr(9)]
    );
    assert!(s.web_sources(&policy, now()).unwrap().is_empty());
    assert_eq!(s.mirror_lists().unwrap().len(), 2);
    // Revoked signing key: out of use too.
    policy
        .learn_revocation(&p.revocation(p.signing.public(), T0))
        .unwrap();
    assert!(s.mirror_addresses(&policy, now()).unwrap().is_empty());
    // Expired: not handed out.
    let policy = p.policy();
    assert!(
        s.mirror_addresses(&policy, T0.plus(31 * DAY))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn lists_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = Publisher::new(1);
    let list = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    {
        let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert!(s.put_mirror_list(&list, &p.policy(), now()).unwrap());
        s.flush().unwrap();
    }
    let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(s.mirror_list(&p.public()).unwrap().unwrap().1, list);
    assert_eq!(
        s.log_items(0, 10).unwrap(),
        vec![(0, LogItem::MirrorList(p.public()))]
    );
}

#[test]
fn archives_carry_the_list_and_import_verifies_it() {
    use kolokol::proto::bundle::{FileKind, FrameTag, FrameWriter};
    use kolokol::store::archive::{self, ExportFilter};
    let p = Publisher::new(1);
    let policy = p.policy();
    let a = store();
    store_certificate(&a, &p);
    let bytes = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    a.put_mirror_list(&bytes, &policy, now()).unwrap();
    let mut file = Vec::new();
    archive::export(&a, &ExportFilter::default(), &mut file, &mut |_| {}).unwrap();
    let import = |s: &Store, file: &[u8]| {
        let mut policy = bare_policy(&p);
        s.load_trust(&mut policy, now()).unwrap();
        archive::import(s, &mut policy, file, now(), &mut |_| {}).unwrap()
    };
    let b = store();
    let report = import(&b, &file);
    assert_eq!(report.mirror_lists, 1, "{report:?}");
    assert_eq!(b.mirror_list(&p.public()).unwrap().unwrap().1, bytes);
    // Again: not news.
    assert_eq!(import(&b, &file).mirror_lists, 0);
    // A forged list in an archive is refused and named; the rest imports.
    let mut forged = signed_list(&p, T0.plus(20), vec![addr(2)], vec![]);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut w = FrameWriter::new(Vec::new(), FileKind::Archive).unwrap();
    w.write_frame(FrameTag::Certificate, &p.cert).unwrap();
    w.write_frame(FrameTag::MirrorList, &forged).unwrap();
    let bad = w.finish().unwrap();
    let c = store();
    let report = import(&c, &bad);
    assert_eq!((report.mirror_lists, report.refused), (0, 1), "{report:?}");
    assert!(
        report.rejected[0].what.contains("mirror list"),
        "{report:?}"
    );
    assert_eq!(report.certificates, 1);
    assert!(c.mirror_list(&p.public()).unwrap().is_none());
}

#[test]
fn a_publisher_file_carries_the_list_as_hex_checked_when_read() {
    use kolokol::proto::mirrors::MAX_MIRROR_LIST_BYTES;
    use kolokol::trust::PublisherFile;
    use std::path::Path;
    let p = Publisher::new(1);
    let bytes = signed_list(&p, T0.plus(10), vec![addr(1)], vec![]);
    let with =
        |p: &Publisher, list: &str| format!("{}mirror_list = \"{list}\"\n", trust_file(p, "news"));
    let path = Path::new("news.toml");
    let file = PublisherFile::parse(&with(&p, &hex::encode(&bytes)), path).unwrap();
    assert_eq!(file.mirror_list_bytes().unwrap(), Some(bytes.clone()));
    assert_eq!(PublisherFile::parse(&file.to_toml(), path).unwrap(), file);
    let s = store();
    let from_file = file.mirror_list_bytes().unwrap().unwrap();
    assert!(s.put_mirror_list(&from_file, &p.policy(), now()).unwrap());
    let refused = [
        (with(&Publisher::new(3), &hex::encode(&bytes)), "root key"),
        (with(&p, "zz"), "not hex"),
        (with(&p, &hex::encode(b"not a list")), "mirror_list"),
        (with(&p, &"00".repeat(MAX_MIRROR_LIST_BYTES + 1)), "at most"),
    ];
    // The certificate that signs it comes along, checked the same way.
    let mut with_cert = file.clone();
    with_cert.set_mirror_list(&bytes, &p.cert);
    let back = PublisherFile::parse(&with_cert.to_toml(), path).unwrap();
    assert_eq!(
        back.mirror_certificate_bytes().unwrap(),
        Some(p.cert.clone())
    );
    let other_cert = Publisher::new(3).cert;
    let text = format!(
        "{}mirror_certificate = \"{}\"\n",
        trust_file(&p, "news"),
        hex::encode(&other_cert)
    );
    let err = PublisherFile::parse(&text, path).unwrap_err().to_string();
    assert!(err.contains("mirror_certificate"), "{err}");
    for (text, why) in refused {
        let err = PublisherFile::parse(&text, path).unwrap_err().to_string();
        assert!(err.contains(why) && err.contains("news.toml"), "{err}");
    }
}

#[test]
fn a_bundle_file_holds_no_mirror_list() {
    use kolokol::proto::bundle::{BundleFile, FileKind, FrameTag, FrameWriter};
    let p = Publisher::new(1);
    let mut w = FrameWriter::new(Vec::new(), FileKind::Bundle).unwrap();
    w.write_frame(FrameTag::Certificate, &p.cert).unwrap();
    w.write_frame(
        FrameTag::MirrorList,
        &signed_list(&p, T0.plus(10), vec![addr(1)], vec![]),
    )
    .unwrap();
    w.write_frame(FrameTag::Manifest, &p.signed_manifest(1, b"x", T0))
        .unwrap();
    w.write_frame(FrameTag::Blob, b"x").unwrap();
    let bytes = w.finish().unwrap();
    let err = BundleFile::read(bytes.as_slice()).unwrap_err().to_string();
    assert!(err.contains("mirror list frame"), "{err}");
}
