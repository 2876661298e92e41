//! The `.kolokol` file format: round trips, and that any damage makes
//! reading or verification fail without a panic.

mod common;

use common::*;
use kolokol::proto::bundle::{
    BundleFile, FileError, FileKind, FrameReader, FrameTag, FrameWriter, verify_bundle_file,
};
use kolokol::proto::*;
use proptest::prelude::*;

fn sample() -> (Publisher, Vec<u8>) {
    let p = Publisher::new(1);
    let bytes = p
        .bundle_file(1, b"<p>Body of the story, with some text.</p>")
        .to_bytes()
        .unwrap();
    (p, bytes)
}

/// Reads and verifies; Ok only when the whole file is good.
fn check(p: &Publisher, bytes: &[u8]) -> Result<(), String> {
    let file = BundleFile::read(bytes).map_err(|e| e.to_string())?;
    verify_bundle_file(&bare_policy(p), file, now()).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn round_trip_verifies() {
    let (p, bytes) = sample();
    let file = BundleFile::read(bytes.as_slice()).unwrap();
    assert_eq!(file.to_bytes().unwrap(), bytes);
    let v = verify_bundle_file(&bare_policy(&p), file.clone(), now()).unwrap();
    assert_eq!(v.heads.len(), 1);
    assert_eq!(v.bundle.manifest().sequence, 1);
}

#[test]
fn every_single_byte_flip_fails() {
    let (p, bytes) = sample();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut damaged = bytes.clone();
            damaged[i] ^= mask;
            assert!(
                check(&p, &damaged).is_err(),
                "flipping byte {i} with {mask:#x} went unnoticed"
            );
        }
    }
}

#[test]
fn every_truncation_fails() {
    let (p, bytes) = sample();
    for len in 0..bytes.len() {
        assert!(
            check(&p, &bytes[..len]).is_err(),
            "truncation to {len} bytes went unnoticed"
        );
    }
}

#[test]
fn extension_fails() {
    let (p, bytes) = sample();
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        BundleFile::read(longer.as_slice()),
        Err(FileError::TrailingData)
    ));
    let mut doubled = bytes.clone();
    doubled.extend_from_slice(&bytes);
    assert!(check(&p, &doubled).is_err());
}

#[test]
fn oversized_frame_is_refused_before_reading_it() {
    // A manifest frame claiming 4 GiB: refused from its header alone.
    let mut bytes = b"KOLOKOL\n\x01\x00\x00\x00".to_vec();
    bytes.push(FrameTag::Manifest as u8);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = BundleFile::read(bytes.as_slice()).unwrap_err();
    assert!(matches!(err, FileError::FrameTooLarge { .. }), "{err}");
}

#[test]
fn structure_rules() {
    let p = Publisher::new(1);
    let body = b"<p>x</p>";
    // A blob before the manifest.
    let mut w = FrameWriter::new(Vec::new(), FileKind::Bundle).unwrap();
    w.write_frame(FrameTag::Blob, body).unwrap();
    w.write_frame(FrameTag::Manifest, &p.signed_manifest(1, body, T0))
        .unwrap();
    let bytes = w.finish().unwrap();
    assert!(matches!(
        BundleFile::read(bytes.as_slice()),
        Err(FileError::Structure(_))
    ));
    // Two manifests.
    let mut w = FrameWriter::new(Vec::new(), FileKind::Bundle).unwrap();
    w.write_frame(FrameTag::Manifest, &p.signed_manifest(1, body, T0))
        .unwrap();
    w.write_frame(FrameTag::Manifest, &p.signed_manifest(2, body, T0))
        .unwrap();
    let bytes = w.finish().unwrap();
    assert!(matches!(
        BundleFile::read(bytes.as_slice()),
        Err(FileError::Structure(_))
    ));
    // An archive is not a bundle file.
    let bytes = FrameWriter::new(Vec::new(), FileKind::Archive)
        .unwrap()
        .finish()
        .unwrap();
    assert!(matches!(
        BundleFile::read(bytes.as_slice()),
        Err(FileError::WrongKind { .. })
    ));
    // Not a kolokol file at all.
    assert!(matches!(
        BundleFile::read(&b"PK\x03\x04 a zip file"[..]),
        Err(FileError::BadMagic)
    ));
}

#[test]
fn a_tampered_blob_is_named() {
    let p = Publisher::new(1);
    let mut file = p.bundle_file(1, b"<p>original</p>");
    file.blobs[0] = b"<p>falsified</p>".to_vec();
    let err = verify_bundle_file(&bare_policy(&p), file.clone(), now()).unwrap_err();
    assert!(err.to_string().contains("index.html"), "{err}");
}

#[test]
fn frame_reader_counts_frames() {
    let (_, bytes) = sample();
    let mut r = FrameReader::new(bytes.as_slice()).unwrap();
    let mut tags = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        tags.push(f.tag);
    }
    assert_eq!(
        tags,
        [
            FrameTag::Certificate,
            FrameTag::Head,
            FrameTag::Manifest,
            FrameTag::Blob
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = BundleFile::read(data.as_slice());
        let _ = decode_unverified::<Manifest>(&data);
        let _ = decode_unverified::<KeyCertificate>(&data);
        let _ = decode_unverified::<Revocation>(&data);
        let _ = decode_unverified::<Head>(&data);
        let p = Publisher::new(1);
        let policy = p.policy();
        prop_assert!(policy.verify_manifest(&data, now()).is_err());
        prop_assert!(policy.verify_head(&data, now()).is_err());
        prop_assert!(policy.verify_certificate(&data).is_err());
        prop_assert!(policy.verify_revocation(&data).is_err());
    }

    #[test]
    fn random_frames_after_a_valid_header_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut bytes = b"KOLOKOL\n\x01\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&data);
        prop_assert!(BundleFile::read(bytes.as_slice()).is_err());
    }

    #[test]
    fn random_damage_fails(pos in any::<prop::sample::Index>(), mask in 1u8..=255, cut in any::<prop::sample::Index>(), extra in proptest::collection::vec(any::<u8>(), 1..64)) {
        let (p, bytes) = sample();
        let mut flipped = bytes.clone();
        flipped[pos.index(bytes.len())] ^= mask;
        prop_assert!(check(&p, &flipped).is_err());
        prop_assert!(check(&p, &bytes[..cut.index(bytes.len())]).is_err());
        let mut extended = bytes.clone();
        extended.extend_from_slice(&extra);
        prop_assert!(check(&p, &extended).is_err());
    }

    #[test]
    fn manifest_byte_flips_are_rejected(pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let p = Publisher::new(1);
        let mut m = p.signed_manifest(1, b"x", T0);
        let i = pos.index(m.len());
        m[i] ^= mask;
        prop_assert!(p.policy().verify_manifest(&m, now()).is_err());
    }
}

#[test]
fn side_objects_after_the_manifest_are_refused() {
    let p = Publisher::new(1);
    let body = b"<p>x</p>";
    let mut w = FrameWriter::new(Vec::new(), FileKind::Bundle).unwrap();
    w.write_frame(FrameTag::Manifest, &p.signed_manifest(1, body, T0))
        .unwrap();
    w.write_frame(FrameTag::Blob, body).unwrap();
    w.write_frame(FrameTag::Certificate, &p.cert).unwrap();
    let bytes = w.finish().unwrap();
    assert!(matches!(
        BundleFile::read(bytes.as_slice()),
        Err(FileError::Structure(_))
    ));
}

#[test]
fn an_old_bundle_file_with_an_old_head_still_verifies() {
    let p = Publisher::new(1);
    let mut policy = bare_policy(&p);
    policy.learn_certificate(&p.cert).unwrap();
    let newer = policy.verify_head(&p.head(9, T0.plus(100)), now()).unwrap();
    policy.accept_head(newer);
    // The file's head has sequence 1: older than the trusted 9.
    let v = verify_bundle_file(&policy, p.bundle_file(1, b"<p>old</p>"), now()).unwrap();
    assert!(v.heads.is_empty(), "the old head is left out, not trusted");
}

#[test]
fn too_many_side_objects_cannot_be_written() {
    let p = Publisher::new(1);
    let mut file = p.bundle_file(1, b"x");
    file.certificates = vec![p.cert.clone(); kolokol::proto::bundle::MAX_SIDE_OBJECTS + 1];
    assert!(file.write(Vec::new()).is_err());
}
