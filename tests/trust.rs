//! The trust list and the demo newsroom rule.

use kolokol::newsroom::demo;
use kolokol::trust::{PublisherFile, TrustList, bundled};

#[test]
fn the_demo_file_matches_the_demo_keys_and_is_marked() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/demo/kolokol-demo.toml");
    let file = PublisherFile::load(&path).unwrap();
    assert_eq!(file.root_key, demo::root_key().public());
    assert!(file.demo);
}

#[test]
fn the_demo_newsroom_is_not_built_in() {
    let demo_key = demo::root_key().public();
    assert!(
        bundled()
            .unwrap()
            .iter()
            .all(|f| f.root_key != demo_key && !f.demo)
    );
    let dir = tempfile::TempDir::new().unwrap();
    let list = TrustList::open(dir.path()).unwrap();
    assert!(!list.policy().unwrap().is_trusted(&demo_key));
}

#[test]
fn conflicting_names_and_keys_are_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let list = TrustList::open(dir.path()).unwrap();
    let a = dir.path().join("a.toml");
    std::fs::write(
        &a,
        format!(
            "name = \"one\"\nroot_key = \"{}\"\n",
            demo::signing_key().public()
        ),
    )
    .unwrap();
    list.add(&a).unwrap();
    let b = dir.path().join("b.toml");
    std::fs::write(
        &b,
        format!(
            "name = \"one\"\nroot_key = \"{}\"\n",
            demo::root_key().public()
        ),
    )
    .unwrap();
    assert!(
        list.add(&b)
            .unwrap_err()
            .to_string()
            .contains("already trusted")
    );
    std::fs::write(
        &b,
        format!(
            "name = \"two\"\nroot_key = \"{}\"\n",
            demo::signing_key().public()
        ),
    )
    .unwrap();
    assert!(
        list.add(&b)
            .unwrap_err()
            .to_string()
            .contains("already trusted as")
    );
}
