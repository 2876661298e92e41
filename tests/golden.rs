//! Golden vectors: fixed seed keys give fixed bytes, ids and signatures.
//! A change here is a change of the wire format and needs a new format
//! version, not a new vector.

mod common;

use common::*;
use kolokol::proto::bundle::BundleFile;
use kolokol::proto::*;

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
    assert_eq!(hex::encode(&p.cert), GOLDEN_CERT);
    assert_eq!(p.cert_id().to_string(), GOLDEN_CERT_ID);
}

#[test]
fn manifest_bytes_id_and_signature() {
    let p = Publisher::new(1);
    let bytes = golden_manifest(&p).sign(&p.signing).unwrap();
    let (body, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    assert_eq!(hex::encode(body), GOLDEN_MANIFEST_BODY);
    assert_eq!(hex::encode(sig), GOLDEN_MANIFEST_SIG);
    assert_eq!(BundleId::of(&bytes).to_string(), GOLDEN_BUNDLE_ID);
    // And it verifies, with the id the policy computes.
    let v = p.policy().verify_manifest(&bytes, now()).unwrap();
    assert_eq!(v.id().to_string(), GOLDEN_BUNDLE_ID);
}

#[test]
fn head_bytes() {
    let p = Publisher::new(1);
    assert_eq!(hex::encode(p.head(3, T0)), GOLDEN_HEAD);
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
const GOLDEN_CERT: &str = "018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3940180c3bbc20680ddd9c30600ae4f317424bfb0d1dbd77376732a9fbb927d759371b720cbd51db85f44c2ff9c4dcc3525ad8cccb37722890c3a91ccf78275d9d4ac52ade2fc20df46db913f0f";
const GOLDEN_CERT_ID: &str = "5cb5729ca65fe2d5faaf03dea9b3c4546ee1b10160e12115cc9a68adf76c1551";
const GOLDEN_MANIFEST_BODY: &str = "018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c5cb5729ca65fe2d5faaf03dea9b3c4546ee1b10160e12115cc9a68adf76c1551070707070707070707070707070707070100010080c3bbc20606476f6c64656e02656e0103416e6e01044e65777380c3bbc206000000010a696e6465782e68746d6c18746578742f68746d6c3b20636861727365743d7574662d380dfc26fc6ed632754fbff6404643db3305a85dd958963f2a2f995096ec774c99b9";
const GOLDEN_MANIFEST_SIG: &str = "be33cd7fff018fdc3c60ffe5aef80a21ca3a9434b2b1dd131a6f83b3cceef655bd7109093ba3ddb93999f019129984dbce4a5240115dfe1e8002a881895cd70f";
const GOLDEN_BUNDLE_ID: &str = "cdfa2aa7d28476bbac78b6fd898abf0bfaae8cadc7373e5c239ab0b524230454";
const GOLDEN_HEAD: &str = "018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c5cb5729ca65fe2d5faaf03dea9b3c4546ee1b10160e12115cc9a68adf76c15510380c3bbc20680b8e0c2069129e7d4a62e5feaf10fe5c1120e831af4734e6e348cc3d939c8f844a39e1e4282071cae060801f5e418efe986a80890ff29f598b80c406046bee5fd2dbb2e09";
const GOLDEN_FILE_HASH: &str = "590b6c80d715378e7f5ed737f0c95bd627b9590baaac96db6bdef36b1b0a9dce";
