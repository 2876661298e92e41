//! The demo newsroom. **Its secret keys are public**: they are derived from
//! fixed strings below so that anyone can run the demo and the tests. It is
//! never trusted unless a user adds `keys/demo/kolokol-demo.toml` by hand.

use std::path::Path;

use super::{
    ArticleDraft, Draft, DraftBuilder, InitOptions, MediaFile, Newsroom, NewsroomError, Published,
    Relation,
};
use crate::proto::{SecretKey, Timestamp};

/// Name of the demo newsroom.
pub const DEMO_NAME: &str = "kolokol-demo";

fn derive(role: &str) -> SecretKey {
    let seed = blake3::derive_key(
        "kolokol demo newsroom 2026 PUBLIC KEY MATERIAL, NEVER TRUST",
        role.as_bytes(),
    );
    SecretKey::from_seed(&seed)
}

/// The demo newsroom's root key (public knowledge).
pub fn root_key() -> SecretKey {
    derive("root")
}

/// The demo newsroom's first signing key (public knowledge).
pub fn signing_key() -> SecretKey {
    derive("signing-1")
}

/// The sample stories shipped in the binary, written for the demo:
/// (file name, contents). Published in this order by [`publish_samples`].
pub const SAMPLES: &[(&str, &[u8])] = &[
    (
        "01-mirrors.md",
        include_bytes!("../demo/stories/01-mirrors.md"),
    ),
    (
        "02-correction.md",
        include_bytes!("../demo/stories/02-correction.md"),
    ),
    (
        "03-kolokol-ru.md",
        include_bytes!("../demo/stories/03-kolokol-ru.md"),
    ),
    (
        "04-arabic.md",
        include_bytes!("../demo/stories/04-arabic.md"),
    ),
    (
        "05-rumour.md",
        include_bytes!("../demo/stories/05-rumour.md"),
    ),
    (
        "06-retraction.md",
        include_bytes!("../demo/stories/06-retraction.md"),
    ),
    ("bell.png", include_bytes!("../demo/stories/bell.png")),
];

/// The demo newsroom in `dir`: opened if it is there, else created with
/// the demo keys. Its key certificate starts a day before `now`, so
/// sample stories dated in the past fall within it.
pub fn open_or_init(dir: &Path, now: Timestamp) -> Result<Newsroom, NewsroomError> {
    if let Ok(n) = Newsroom::open(dir) {
        return Ok(n);
    }
    Newsroom::init_with_keys(
        dir,
        &InitOptions {
            name: DEMO_NAME.into(),
            display_name: Some("Kolokol Demo Newsroom (not a real publisher)".into()),
            homepage: None,
            key_validity_secs: super::DEFAULT_KEY_VALIDITY_SECS,
            languages: Vec::new(),
        },
        now.minus(24 * 3600),
        root_key(),
        signing_key(),
    )
}

fn sample(name: &str) -> &'static [u8] {
    SAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[][..], |(_, b)| *b)
}

fn draft(name: &str, relation: Relation, with_image: bool) -> Result<Draft, NewsroomError> {
    let path = Path::new("demo").join(name);
    let text = std::str::from_utf8(sample(name)).map_err(|e| NewsroomError::Invalid {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut builder =
        DraftBuilder::from_article(&path, text, &ArticleDraft::default(), &root_key().public())?;
    if with_image {
        builder.media.push(MediaFile {
            name: "bell.png".into(),
            media_type: "image/png".into(),
            bytes: sample("bell.png").to_vec(),
        });
    }
    builder.relation = relation;
    Ok(builder.build()?)
}

/// Signs the sample stories as the demo newsroom: a story with an image,
/// its correction, a story in Russian, one in Arabic, and a rumour with
/// its retraction. Returns them in publication order.
pub fn publish_samples(
    newsroom: &Newsroom,
    now: Timestamp,
) -> Result<Vec<Published>, NewsroomError> {
    let mut out = Vec::new();
    let first = newsroom.publish(draft("01-mirrors.md", Relation::Story, true)?, now)?;
    let first_id = first.bundle.id();
    out.push(first);
    out.push(newsroom.publish(
        draft("02-correction.md", Relation::CorrectionOf(first_id), true)?,
        now,
    )?);
    out.push(newsroom.publish(draft("03-kolokol-ru.md", Relation::Story, false)?, now)?);
    out.push(newsroom.publish(draft("04-arabic.md", Relation::Story, false)?, now)?);
    let rumour = newsroom.publish(draft("05-rumour.md", Relation::Story, false)?, now)?;
    let rumour_id = rumour.bundle.id();
    out.push(rumour);
    out.push(newsroom.publish(
        draft("06-retraction.md", Relation::RetractionOf(rumour_id), false)?,
        now,
    )?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_list_knows_the_demo_root_key() {
        assert_eq!(root_key().public(), crate::trust::DEMO_ROOT_KEY);
    }
}
