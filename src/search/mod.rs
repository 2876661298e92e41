//! Full-text search over stories: titles, summaries and bodies, with
//! stemming for the languages tantivy has a Snowball stemmer for (Russian
//! and English among them) and plain lower-cased words for the rest
//! (Ukrainian, Belarusian, Persian, ...), ranked by BM25.
//!
//! Each language has its own pair of fields (the headline with the summary,
//! and the body), analysed by its own stemmer, so that a Russian story's
//! words are stemmed as Russian and an English one's as English; a query
//! is analysed once per field and matches in any of them. The index is
//! one document per story (its newest version), replaced when a new
//! version comes and removed when it is retracted.
//!
//! On disk it lives in its own folder of the data directory. In a sealed
//! data directory every file of it is sealed (see `sealed`), so that
//! neither words nor their counts can be read from the device.

mod indexer;
mod private;
mod sealed;
mod text;

use std::path::Path;
use std::sync::{Arc, Mutex};

use tantivy::collector::TopDocs;
use tantivy::merge_policy::LogMergePolicy;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use tantivy::{
    Directory, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term,
};

use crate::proto::{PublicKey, StoryId};
use crate::seal::Sealer;

pub use indexer::{Indexed, Indexer, IndexerError};
pub use text::plain_text;

/// Longest query taken, in bytes: enough for any search a reader types,
/// and a bound on the terms one request can make the index look up.
pub const MAX_QUERY: usize = 256;
/// Most bytes of a body's text indexed: the first words of a very long
/// story find it as well as all of them would.
pub const MAX_BODY_TEXT: usize = 64 * 1024;
/// Memory the index writer may use before it writes a segment.
const WRITER_MEMORY: usize = 20_000_000;
/// Segments are not merged beyond this many stories, so that the one
/// file being written (held whole in memory when sealed) stays bounded.
const MAX_DOCS_PER_SEGMENT: usize = 100_000;

/// Languages with a stemmer, by their primary language subtag.
const STEMMED: [(&str, Language); 18] = [
    ("ar", Language::Arabic),
    ("da", Language::Danish),
    ("de", Language::German),
    ("el", Language::Greek),
    ("en", Language::English),
    ("es", Language::Spanish),
    ("fi", Language::Finnish),
    ("fr", Language::French),
    ("hu", Language::Hungarian),
    ("it", Language::Italian),
    ("nl", Language::Dutch),
    ("no", Language::Norwegian),
    ("pt", Language::Portuguese),
    ("ro", Language::Romanian),
    ("ru", Language::Russian),
    ("sv", Language::Swedish),
    ("ta", Language::Tamil),
    ("tr", Language::Turkish),
];
/// The field suffix of every other language.
const OTHER: &str = "any";

/// What went wrong with the search index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index could not be opened, read or written.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// Its folder could not be made or read.
    #[error("search index folder {path}: {source}")]
    Folder {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its writer was left unusable by a panic in another thread.
    #[error("search index writer poisoned")]
    Poisoned,
}

/// One story as the index takes it.
#[derive(Debug, Clone, Copy)]
pub struct Doc<'a> {
    /// The publisher.
    pub publisher: &'a PublicKey,
    /// The story.
    pub story: &'a StoryId,
    /// Its language tag.
    pub language: &'a str,
    /// Its headline.
    pub title: &'a str,
    /// Its summary.
    pub summary: Option<&'a str>,
    /// Its section.
    pub section: Option<&'a str>,
    /// Its body as plain text ([`plain_text`] of the HTML).
    pub body: &'a str,
}

/// What a search is narrowed to, besides its words. The index applies
/// it, so that a page of hits is a page of what the reader asked for
/// and the count is of those alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Narrow<'a> {
    /// Only these publishers' stories (all stories when `None`).
    pub publishers: Option<&'a [PublicKey]>,
    /// Only stories with this language tag (compared lower case).
    pub language: Option<&'a str>,
    /// Only stories in this section (compared exactly).
    pub section: Option<&'a str>,
}

/// One page of a search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Stories matching, in all.
    pub total: usize,
    /// The page asked for, best first.
    pub hits: Vec<Hit>,
}

/// A story found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The publisher.
    pub publisher: PublicKey,
    /// The story.
    pub story: StoryId,
    /// Its language tag, lower case.
    pub language: String,
    /// Its BM25 score: higher is better.
    pub score: f32,
}

struct Fields {
    id: Field,
    /// The story's language tag, lower case, kept to filter hits by.
    lang: Field,
    /// The publisher's key in hex, to narrow a search to one.
    publisher: Field,
    /// The story's section, to narrow a search to one.
    section: Field,
    /// (language subtag or "any", headline field, body field).
    text: Vec<(&'static str, Field, Field)>,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let id = b.add_text_field("id", STRING | STORED);
    let lang = b.add_text_field("lang", STRING | STORED);
    let publisher = b.add_text_field("publisher", STRING);
    let section = b.add_text_field("section", STRING);
    let mut text = Vec::new();
    let names = STEMMED.iter().map(|(code, _)| *code).chain([OTHER]);
    for code in names {
        let options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(&format!("kolokol_{code}"))
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let head = b.add_text_field(&format!("head_{code}"), options.clone());
        let body = b.add_text_field(&format!("body_{code}"), options);
        text.push((code, head, body));
    }
    (
        b.build(),
        Fields {
            id,
            lang,
            publisher,
            section,
            text,
        },
    )
}

fn analyzer(language: Option<Language>) -> TextAnalyzer {
    let base = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser);
    match language {
        Some(l) => base.filter(Stemmer::new(l)).build(),
        None => base.build(),
    }
}

fn key(publisher: &PublicKey, story: &StoryId) -> String {
    let mut k = hex::encode(publisher.as_bytes());
    k.push_str(&hex::encode(story.0));
    k
}

fn parse_key(s: &str) -> Option<(PublicKey, StoryId)> {
    let bytes = hex::decode(s).ok()?;
    let (p, st) = (bytes.get(..32)?, bytes.get(32..)?);
    Some((PublicKey(p.try_into().ok()?), StoryId(st.try_into().ok()?)))
}

/// The primary subtag of a language tag, lower case.
fn primary(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Removes every file in `dir` (the index's own folder).
fn empty_folder(dir: &Path) -> Result<(), SearchError> {
    let failed = |source| SearchError::Folder {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        if entry.file_type().map_err(failed)?.is_file() {
            std::fs::remove_file(entry.path()).map_err(failed)?;
        }
    }
    Ok(())
}

/// The full-text index.
pub struct Search {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Search(..)")
    }
}

impl Search {
    /// Opens the index in `dir`, creating it if needed; sealed with
    /// `sealer` when the data directory is sealed.
    pub fn open(dir: &Path, sealer: Option<Arc<Sealer>>) -> Result<Self, SearchError> {
        crate::files::create_private_dir_all(dir).map_err(|source| SearchError::Folder {
            path: dir.to_owned(),
            source,
        })?;
        let (schema, fields) = schema();
        let open = || -> Result<Box<dyn Directory>, SearchError> {
            Ok(match &sealer {
                Some(s) => Box::new(sealed::SealedDirectory::new(dir, s.clone())),
                None => Box::new(private::PrivateDirectory::open(dir)?),
            })
        };
        let index = match Index::open_or_create(open()?, schema.clone()) {
            // An index made by another version of this schema: it is
            // rebuilt from the store (the indexer finds no cursor in the
            // new one and reads the store's log from the start).
            Err(TantivyError::SchemaError(_)) => {
                tracing::info!("search index: made by another version, rebuilding it");
                empty_folder(dir)?;
                Index::open_or_create(open()?, schema)?
            }
            other => other?,
        };
        Self::with_index(index, fields)
    }

    /// An index in memory, for tests and for a store in memory.
    pub fn memory() -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        Self::with_index(Index::create_in_ram(schema), fields)
    }

    fn with_index(index: Index, fields: Fields) -> Result<Self, SearchError> {
        for (code, language) in STEMMED {
            index
                .tokenizers()
                .register(&format!("kolokol_{code}"), analyzer(Some(language)));
        }
        index
            .tokenizers()
            .register(&format!("kolokol_{OTHER}"), analyzer(None));
        let writer: IndexWriter = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let mut policy = LogMergePolicy::default();
        policy.set_max_docs_before_merge(MAX_DOCS_PER_SEGMENT);
        writer.set_merge_policy(Box::new(policy));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    fn fields_for(&self, language: &str) -> (Field, Field) {
        let code = primary(language);
        let code = match code.as_str() {
            // Norwegian Bokmål and Nynorsk share the Norwegian stemmer.
            "nb" | "nn" => "no",
            other => other,
        };
        let pick = |c: &str| self.fields.text.iter().find(|(n, _, _)| *n == c);
        pick(code)
            .or_else(|| pick(OTHER))
            .map_or((self.fields.id, self.fields.id), |(_, h, b)| (*h, *b))
    }

    /// Adds a story, replacing what the index held for it. Seen by
    /// searches after the next [`Search::commit`].
    pub fn add(&self, doc: &Doc<'_>) -> Result<(), SearchError> {
        let (head, body) = self.fields_for(doc.language);
        let id = key(doc.publisher, doc.story);
        let mut d = TantivyDocument::default();
        d.add_text(self.fields.id, &id);
        d.add_text(self.fields.lang, doc.language.to_lowercase());
        d.add_text(self.fields.publisher, hex::encode(doc.publisher.as_bytes()));
        if let Some(section) = doc.section {
            d.add_text(self.fields.section, section);
        }
        match doc.summary {
            Some(s) => d.add_text(head, format!("{}\n{s}", doc.title)),
            None => d.add_text(head, doc.title),
        }
        d.add_text(body, text::cut(doc.body, MAX_BODY_TEXT));
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        w.delete_term(Term::from_field_text(self.fields.id, &id));
        w.add_document(d)?;
        Ok(())
    }

    /// Removes a story (retracted, evicted or forgotten).
    pub fn remove(&self, publisher: &PublicKey, story: &StoryId) -> Result<(), SearchError> {
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        w.delete_term(Term::from_field_text(
            self.fields.id,
            &key(publisher, story),
        ));
        Ok(())
    }

    /// Removes every story.
    pub fn clear(&self) -> Result<(), SearchError> {
        let w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        w.delete_all_documents()?;
        Ok(())
    }

    /// Makes what was added and removed durable and visible to searches,
    /// keeping the indexer's cursor as it was.
    pub fn commit(&self) -> Result<(), SearchError> {
        let payload = self.payload()?;
        self.commit_with(payload)
    }

    /// Commits with `payload` (the indexer's cursor) saved beside it, in
    /// the same atomic step.
    fn commit_with(&self, payload: Option<String>) -> Result<(), SearchError> {
        let mut w = self.writer.lock().map_err(|_| SearchError::Poisoned)?;
        let mut prepared = w.prepare_commit()?;
        if let Some(p) = payload {
            prepared.set_payload(&p);
        }
        prepared.commit()?;
        drop(w);
        self.reader.reload()?;
        Ok(())
    }

    /// What the last commit saved with it.
    fn payload(&self) -> Result<Option<String>, SearchError> {
        Ok(self.index.load_metas()?.payload)
    }

    /// Stories indexed (as of the last commit).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether no story is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Page `skip..skip + limit` of the stories matching `query` within
    /// `narrow`, best first, and how many match in all. Query syntax
    /// errors are forgiven (the words still count), and a query longer
    /// than [`MAX_QUERY`] is cut. Only the page's stories are read from
    /// the index's store of fields, so a page costs the matching and
    /// ranking of the words, not the number of hits.
    pub fn search(
        &self,
        query: &str,
        narrow: Narrow<'_>,
        skip: usize,
        limit: usize,
    ) -> Result<Found, SearchError> {
        let query = text::cut(query, MAX_QUERY).trim();
        if query.is_empty() {
            return Ok(Found::default());
        }
        let mut all = Vec::new();
        for (_, head, body) in &self.fields.text {
            all.push(*head);
            all.push(*body);
        }
        let mut parser = QueryParser::for_index(&self.index, all);
        // Every word must match (in one field or another), as a search
        // box is expected to behave; a headline match ranks higher.
        parser.set_conjunction_by_default();
        for (_, head, _) in &self.fields.text {
            parser.set_field_boost(*head, 2.0);
        }
        let (words, _errors) = parser.parse_query_lenient(query);
        // The narrowing terms must match too but add nothing to a
        // story's rank.
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, words)];
        let searcher = self.reader.searcher();
        let mut must = |q: Box<dyn Query>| {
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))));
        };
        if let Some(list) = narrow.publishers {
            let terms: Vec<Term> = list
                .iter()
                .map(|p| Term::from_field_text(self.fields.publisher, &hex::encode(p.as_bytes())))
                .collect();
            match terms.as_slice() {
                [] => return Ok(Found::default()),
                [one] => must(Box::new(TermQuery::new(
                    one.clone(),
                    IndexRecordOption::Basic,
                ))),
                // Usually every story indexed is of a publisher in the
                // list (the trusted ones): then the set is not asked
                // about, as it would cost a look at each of their
                // postings.
                _ if !self.all_of(&searcher, &terms)? => {
                    must(Box::new(TermSetQuery::new(terms)));
                }
                _ => {}
            }
        }
        if let Some(l) = narrow.language {
            must(Box::new(TermQuery::new(
                Term::from_field_text(self.fields.lang, &l.to_lowercase()),
                IndexRecordOption::Basic,
            )));
        }
        if let Some(section) = narrow.section {
            must(Box::new(TermQuery::new(
                Term::from_field_text(self.fields.section, section),
                IndexRecordOption::Basic,
            )));
        }
        let q = BooleanQuery::new(clauses);
        // Counted apart from the ranking: a count needs no scores, and
        // tantivy counts a segment without deletions from its postings'
        // lengths where it can.
        let total = q.count(&searcher)?;
        if limit == 0 || skip >= total {
            return Ok(Found {
                total,
                hits: Vec::new(),
            });
        }
        let top = searcher.search(
            &q,
            &TopDocs::with_limit(limit).and_offset(skip).order_by_score(),
        )?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr)?;
            let found = d
                .get_first(self.fields.id)
                .and_then(|v| v.as_str())
                .and_then(parse_key);
            let language = d
                .get_first(self.fields.lang)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            if let Some((publisher, story)) = found {
                hits.push(Hit {
                    publisher,
                    story,
                    language,
                    score,
                });
            }
        }
        Ok(Found { total, hits })
    }

    /// Whether every document in the index (deleted ones too) has one of
    /// `terms`, each document having exactly one publisher.
    fn all_of(&self, searcher: &tantivy::Searcher, terms: &[Term]) -> Result<bool, SearchError> {
        let mut with = 0u64;
        for t in terms {
            with += searcher.doc_freq(t)?;
        }
        let docs: u64 = searcher
            .segment_readers()
            .iter()
            .map(|r| u64::from(r.max_doc()))
            .sum();
        Ok(with >= docs)
    }
}

#[cfg(test)]
mod tests;
