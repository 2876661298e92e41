use super::*;
use crate::newsroom::{InitOptions, Relation};

fn now() -> Timestamp {
    Timestamp::from_system(std::time::SystemTime::now())
}

fn init(dir: &Path) -> Newsroom {
    let opts = InitOptions {
        name: "test".into(),
        display_name: None,
        homepage: None,
        key_validity_secs: 86_400,
        languages: Vec::new(),
    };
    Newsroom::init(dir, &opts, now().minus(60)).unwrap()
}

fn draft(n: usize, story: Option<StoryId>) -> Draft {
    Draft {
        title: format!("Story {n}"),
        language: "en".into(),
        authors: Vec::new(),
        section: None,
        original_url: None,
        summary: None,
        published: None,
        body_html: format!("<p>Story {n}</p>"),
        media: Vec::new(),
        story,
        relation: Relation::Story,
    }
}

/// What the folder says, by decoding every bundle: the index must agree.
fn from_folder(dir: &Path) -> Vec<PublishedEntry> {
    super::super::folder::read_dir_sorted(&dir.join("published"), "kolokol")
        .unwrap()
        .iter()
        .map(|p| {
            let (id, m) = read_manifest(p).unwrap();
            PublishedEntry::of_manifest(id, &m)
        })
        .collect()
}

fn publish_some(n: &Newsroom, count: usize) {
    for i in 0..count {
        n.publish(draft(i, None), now()).unwrap();
    }
}

#[test]
fn records_round_trip_and_damage_is_seen() {
    let e = PublishedEntry {
        sequence: 7,
        id: BundleId([1; 32]),
        story: StoryId([2; 16]),
        version: 3,
        kind: Kind::Retraction,
        certificate: CertId([4; 32]),
        signed_at: Timestamp(5),
        fingerprint: Fingerprint([6; 32]),
    };
    let mut b = e.encode();
    assert_eq!(PublishedEntry::decode(&b), Some(e));
    b[20] ^= 1;
    assert_eq!(PublishedEntry::decode(&b), None);
    assert_eq!(PublishedEntry::decode(&b[..RECORD_LEN - 1]), None);
}

#[test]
fn the_index_follows_every_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let n = init(tmp.path());
    publish_some(&n, 3);
    assert_eq!(n.published().unwrap(), from_folder(tmp.path()));
    // Another process reading the folder sees the same.
    let other = Newsroom::open(tmp.path()).unwrap();
    assert_eq!(other.published().unwrap(), from_folder(tmp.path()));
    let len = fs::metadata(tmp.path().join(INDEX_FILE)).unwrap().len();
    assert_eq!(len, (MAGIC.len() + 3 * RECORD_LEN) as u64);
    // A publish by the other one is seen by the first.
    other.publish(draft(9, None), now()).unwrap();
    assert_eq!(n.published().unwrap().len(), 4);
}

#[test]
fn a_damaged_torn_or_missing_index_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let n = init(tmp.path());
    publish_some(&n, 3);
    let path = tmp.path().join(INDEX_FILE);
    let truth = from_folder(tmp.path());
    let good = fs::read(&path).unwrap();

    let mut damaged = good.clone();
    damaged[MAGIC.len() + RECORD_LEN + 10] ^= 0x40;
    fs::write(&path, &damaged).unwrap();
    assert_eq!(
        Newsroom::open(tmp.path()).unwrap().published().unwrap(),
        truth
    );
    assert_eq!(fs::read(&path).unwrap(), good);

    fs::write(&path, &good[..good.len() - 5]).unwrap();
    assert_eq!(
        Newsroom::open(tmp.path()).unwrap().published().unwrap(),
        truth
    );
    assert_eq!(fs::read(&path).unwrap(), good);

    fs::write(&path, b"not an index").unwrap();
    assert_eq!(
        Newsroom::open(tmp.path()).unwrap().published().unwrap(),
        truth
    );

    fs::remove_file(&path).unwrap();
    let reopened = Newsroom::open(tmp.path()).unwrap();
    reopened.publish(draft(5, None), now()).unwrap();
    assert_eq!(reopened.published().unwrap(), from_folder(tmp.path()));
    assert_eq!(fs::read(&path).unwrap().len(), MAGIC.len() + 4 * RECORD_LEN);
}

#[test]
fn an_index_listing_a_bundle_the_folder_lacks_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let n = init(tmp.path());
    publish_some(&n, 3);
    fs::remove_file(bundle_path(tmp.path(), 2)).unwrap();
    let reopened = Newsroom::open(tmp.path()).unwrap();
    let seqs: Vec<u64> = reopened
        .published()
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(seqs, vec![1, 3]);
}

#[test]
fn an_index_without_the_newest_records_gets_them_from_those_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let n = init(tmp.path());
    publish_some(&n, 4);
    let path = tmp.path().join(INDEX_FILE);
    let good = fs::read(&path).unwrap();
    // A crash between storing two bundles and appending their records.
    fs::write(&path, &good[..MAGIC.len() + 2 * RECORD_LEN]).unwrap();
    let reopened = Newsroom::open(tmp.path()).unwrap();
    assert_eq!(reopened.published().unwrap(), from_folder(tmp.path()));
    assert_eq!(fs::read(&path).unwrap(), good);
}

#[test]
fn a_bundle_stored_before_state_was_written_keeps_its_number() {
    let tmp = tempfile::tempdir().unwrap();
    let n = init(tmp.path());
    publish_some(&n, 2);
    // As if the second publish stopped after storing its bundle.
    let state_path = tmp.path().join("state.toml");
    let text = fs::read_to_string(&state_path).unwrap();
    fs::write(
        &state_path,
        text.replace("next_sequence = 3", "next_sequence = 2"),
    )
    .unwrap();
    let reopened = Newsroom::open(tmp.path()).unwrap();
    let p = reopened.publish(draft(7, None), now()).unwrap();
    assert_eq!(p.bundle.manifest().sequence, 3);
    let seqs: Vec<u64> = from_folder(tmp.path()).iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(reopened.published().unwrap(), from_folder(tmp.path()));
}

#[test]
fn lookups_go_through_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let n = init(tmp.path());
    let story = StoryId([9; 16]);
    let v1 = n.publish(draft(1, Some(story)), now()).unwrap();
    publish_some(&n, 2);
    let v2 = n.publish(draft(2, Some(story)), now()).unwrap();
    assert_eq!(v2.bundle.manifest().version, 2);
    assert_eq!(v2.bundle.manifest().supersedes, Some(v1.bundle.id()));
    let (latest, m) = n.latest_version(&story).unwrap().unwrap();
    assert_eq!((latest.id, m.version), (v2.bundle.id(), 2));
    let prefix = &v1.bundle.id().to_string()[..10];
    assert_eq!(n.find_bundle(prefix).unwrap(), v1.bundle.id());
    assert!(matches!(
        n.find_bundle("00000000zz"),
        Err(NewsroomError::UnknownBundle(_))
    ));
    assert_eq!(
        latest.fingerprint,
        Fingerprint::of_draft(&draft(2, Some(story)))
    );
    // A record that does not match its bundle (files swapped behind the
    // index's back) is caught when the bundle is read, and rebuilt.
    let a = bundle_path(tmp.path(), 1);
    let b = bundle_path(tmp.path(), 4);
    let (ba, bb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    fs::write(&a, bb).unwrap();
    fs::write(&b, ba).unwrap();
    let reopened = Newsroom::open(tmp.path()).unwrap();
    // Files not named by their own sequence number are left out of it.
    assert!(reopened.latest_version(&story).unwrap().is_none());
}
