//! Golden vectors: fixed seed keys give fixed bytes, ids and signatures.
//! A change here is a change of the wire format and needs a new format
//! version, not a new vector.

mod common;

use common::*;
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const BODY: &[u8] = b"<p>golden</p>";

fn golden_manifest(p: &Publisher) -> Manifest {
    let mut m = p.manifest(1, BODY, T0);
    m.metadata.authors = vec!["Ann".into()];
    m.metadata.original_url = None;
    m.metadata.summary = None;
    m.metadata.title = "Golden".into();
    m.metadata.language = "en".into();
    m
}

#[test]
fn keys_from_fixed_seeds() {
    let p = Publisher::new(1);
    assert_eq!(p.public().to_string(), GOLDEN_ROOT);
    assert_eq!(p.signing.public().to_string(), GOLDEN_SIGNING);
}

#[test]
fn certificate_bytes_and_id() {
    let p = Publisher::new(1);
    assert_eq!(hex(&p.cert), GOLDEN_CERT);
    assert_eq!(p.cert_id().to_string(), GOLDEN_CERT_ID);
}

#[test]
fn manifest_bytes_id_and_signature() {
    let p = Publisher::new(1);
    let bytes = golden_manifest(&p).sign(&p.signing).unwrap();
    let (body, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    assert_eq!(hex(body), GOLDEN_MANIFEST_BODY);
    assert_eq!(hex(sig), GOLDEN_MANIFEST_SIG);
    assert_eq!(BundleId::of(&bytes).to_string(), GOLDEN_BUNDLE_ID);
    // And it verifies, with the id the policy computes.
    let v = p.policy().verify_manifest(&bytes, now()).unwrap();
    assert_eq!(v.id().to_string(), GOLDEN_BUNDLE_ID);
}

#[test]
fn head_bytes() {
    let p = Publisher::new(1);
    assert_eq!(hex(&p.head(3, T0)), GOLDEN_HEAD);
}

#[test]
fn bundle_file_hash() {
    let p = Publisher::new(1);
    let file = BundleFile {
        certificates: vec![p.cert.clone()],
        revocations: vec![],
        heads: vec![p.head(1, T0)],
        manifest: golden_manifest(&p).sign(&p.signing).unwrap(),
        blobs: vec![BODY.to_vec()],
    };
    let bytes = file.to_bytes().unwrap();
    assert_eq!(&bytes[..12], b"KOLOKOL\n\x01\x00\x00\x00");
    assert_eq!(blake3::hash(&bytes).to_hex().to_string(), GOLDEN_FILE_HASH);
}

const GOLDEN_ROOT: &str =
    "ed25519:8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
const GOLDEN_SIGNING: &str =
    "ed25519:8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
const GOLDEN_CERT: &str = "018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3940180a4a7da0680bec5db06006333f029e18c37e149be06a80b6afbf38e02654ed1d0b2e79c3400237f17b0e6c7582535be4da0cc68f150b8fcf6cacac2dd2545ba70c7c0529e2d5cfde0b40c";
const GOLDEN_CERT_ID: &str = "611359969f30c96bd81713e2dae680f5bfd4f396cb4c610899168fb7fdfb5818";
const GOLDEN_MANIFEST_BODY: &str = "018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c611359969f30c96bd81713e2dae680f5bfd4f396cb4c610899168fb7fdfb5818070707070707070707070707070707070100010080a4a7da0606476f6c64656e02656e0103416e6e01044e65777380a4a7da06000000010a696e6465782e68746d6c18746578742f68746d6c3b20636861727365743d7574662d380dfc26fc6ed632754fbff6404643db3305a85dd958963f2a2f995096ec774c99b9";
const GOLDEN_MANIFEST_SIG: &str = "09b94ab6f17a13e841701fe7508f8d4535de76b8d41e12a561f68af81c2d3dbbdceedfd5dc479f524eb9f250474ef1f15104c51240c185ba5e0a696b80a04408";
const GOLDEN_BUNDLE_ID: &str = "efbd33da100490b4ea0c5a9333956111c900ba4394040798ba8b5b100e7a171d";
const GOLDEN_HEAD: &str = "018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c611359969f30c96bd81713e2dae680f5bfd4f396cb4c610899168fb7fdfb58180380a4a7da068099ccda06ee221e7d30227916702d8ef693594216bc0e0a742c470d9340b5cdf9bfae1fa93389d2f12fb8fc403921f2f84860d7dc799ed4621e16ededb8a65a985d07310a";
const GOLDEN_FILE_HASH: &str = "0370e62840b2b2d0200ab1f33c18ce0a32b14a6c7e3a9100fded7180c627e8e3";
