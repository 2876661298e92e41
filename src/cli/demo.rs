//! `kolokol demo`: the demo newsroom signs the sample stories, and a reader's
//! trust list verifies them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::bundle::{CreateArgs, create, describe};
use super::{display, now};
use crate::newsroom::{InitOptions, Newsroom, demo};
use crate::proto::bundle::{BundleFile, verify_bundle_file};
use crate::trust::TrustList;

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Folder for the demo's newsroom, articles and reader data [default: a new temporary folder].
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The sample stories, shipped in the binary: (file name, contents).
const STORIES: &[(&str, &[u8])] = &[
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

fn create_args(article: PathBuf, newsroom: &Path) -> CreateArgs {
    CreateArgs::new(article, newsroom)
}

pub(super) fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = match args.dir {
        Some(d) => d,
        None => {
            std::env::temp_dir().join(format!("kolokol-demo-{}-{}", std::process::id(), now().0))
        }
    };
    let articles = dir.join("articles");
    fs::create_dir_all(&articles).with_context(|| display(&articles))?;
    for (name, bytes) in STORIES {
        let p = articles.join(name);
        fs::write(&p, bytes).with_context(|| display(&p))?;
    }
    println!("Kolokol demo in {}", display(&dir));
    println!("The demo newsroom's secret keys are public: it exists only for this demo.\n");

    let newsroom_dir = dir.join("newsroom");
    let newsroom = match Newsroom::open(&newsroom_dir) {
        Ok(n) => n,
        Err(_) => Newsroom::init_with_keys(
            &newsroom_dir,
            &InitOptions {
                name: demo::DEMO_NAME.into(),
                display_name: Some("Kolokol Demo Newsroom (not a real publisher)".into()),
                homepage: None,
                key_validity_secs: crate::newsroom::DEFAULT_KEY_VALIDITY_SECS,
                languages: Vec::new(),
            },
            // The demo key's certificate starts a day back so sample stories
            // dated in the past are within it.
            now().minus(24 * 3600),
            demo::root_key(),
            demo::signing_key(),
        )?,
    };
    println!(
        "newsroom {} signs with root key {}",
        newsroom.config().name,
        newsroom.root_public()
    );

    let a = |name: &str| articles.join(name);
    let mut args = create_args(a("01-mirrors.md"), &newsroom_dir);
    args.images.push(a("bell.png"));
    let first = create(&newsroom, args)?;
    let mut correction = create_args(a("02-correction.md"), &newsroom_dir);
    correction.images.push(a("bell.png"));
    correction.correction_of = Some(first.bundle.id().to_string());
    create(&newsroom, correction)?;
    create(&newsroom, create_args(a("03-kolokol-ru.md"), &newsroom_dir))?;
    create(&newsroom, create_args(a("04-arabic.md"), &newsroom_dir))?;
    let rumour = create(&newsroom, create_args(a("05-rumour.md"), &newsroom_dir))?;
    let mut retraction = create_args(a("06-retraction.md"), &newsroom_dir);
    retraction.retract = Some(rumour.bundle.id().to_string());
    create(&newsroom, retraction)?;

    // A reader who chose to trust the demo newsroom verifies every bundle.
    // The reader's data directory is the demo's own, never the user's: the
    // demo newsroom must not enter a real trust list this way.
    let reader_data = dir.join("reader");
    let trust = TrustList::open(&reader_data)?;
    trust.add(&newsroom.public_file_path())?;
    let policy = trust.policy()?;
    println!(
        "\nthe reader (data in {}) trusts the demo newsroom and verifies each bundle:\n",
        display(&reader_data)
    );
    for (path, _, _) in newsroom.published()? {
        let f = fs::File::open(&path).with_context(|| display(&path))?;
        let file = BundleFile::read(std::io::BufReader::new(f)).with_context(|| display(&path))?;
        let v = verify_bundle_file(&policy, file, now()).with_context(|| display(&path))?;
        println!("verified {}", display(&path));
        describe(&v.bundle, &newsroom.config().name, &mut std::io::stdout());
        println!();
    }
    println!(
        "Try: kolokol inspect {}",
        display(&newsroom_dir.join("published").join("0000000001.kolokol"))
    );
    println!(
        "     kolokol --data-dir {} verify {}/*.kolokol",
        display(&reader_data),
        display(&newsroom_dir.join("published"))
    );
    Ok(ExitCode::SUCCESS)
}
