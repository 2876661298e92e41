//! Each item's own language, which the feed parser leaves out: RSS and
//! Atom items may carry `dc:language` or `xml:lang` (a Belarusian story in
//! a feed whose channel says `en`), and JSON Feed items `language`. An
//! item's own language wins over the channel's.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::proto::limits::MAX_LANGUAGE;

/// The languages items give themselves, in document order, one per item
/// (`None` where an item names none); `None` when the document cannot be
/// read this way (the feed parser read it, so the items keep the
/// channel's language). At most `max_items` items are looked at.
pub(super) fn item_languages(bytes: &[u8], max_items: usize) -> Option<Vec<Option<String>>> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => json_languages(bytes, max_items),
        Some(_) => xml_languages(bytes, max_items),
        None => None,
    }
}

fn clean(lang: &str) -> Option<String> {
    let lang = lang.trim();
    (!lang.is_empty() && lang.len() <= MAX_LANGUAGE).then(|| lang.to_ascii_lowercase())
}

fn xml_lang(e: &BytesStart<'_>) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == "xml:lang")
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .and_then(|v| clean(&v))
        })
}

fn is_item(local: &str) -> bool {
    local == "item" || local == "entry"
}

fn xml_languages(bytes: &[u8], max_items: usize) -> Option<Vec<Option<String>>> {
    let mut reader = Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut out: Vec<Option<String>> = Vec::new();
    // Depth inside the current item (0: not in one), and whether a
    // `language` element directly inside it is open.
    let mut depth = 0usize;
    let mut in_language = false;
    loop {
        let event = reader.read_event_into(&mut buf).ok()?;
        match event {
            Event::Start(e) => {
                let local = e.local_name();
                if depth == 0 && is_item(local.as_ref()) {
                    if out.len() >= max_items {
                        break;
                    }
                    out.push(xml_lang(&e));
                    depth = 1;
                } else if depth > 0 {
                    depth += 1;
                    // `dc:language` (or any namespace's `language`) as a
                    // direct child of the item says more than `xml:lang`.
                    in_language = depth == 2 && local.as_ref() == "language";
                }
            }
            Event::Empty(e) if depth == 0 && is_item(e.local_name().as_ref()) => {
                if out.len() >= max_items {
                    break;
                }
                out.push(xml_lang(&e));
            }
            Event::Text(t) if in_language => {
                if let (Some(slot), Some(lang)) = (out.last_mut(), clean(&t.xml10_content())) {
                    *slot = Some(lang);
                }
            }
            Event::End(_) => {
                in_language = false;
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Some(out)
}

fn json_languages(bytes: &[u8], max_items: usize) -> Option<Vec<Option<String>>> {
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        language: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Feed {
        #[serde(default)]
        items: Vec<Item>,
    }
    // The document is bounded by the feed's size limit, and was parsed
    // whole already.
    let feed: Feed = serde_json::from_slice(bytes).ok()?;
    Some(
        feed.items
            .into_iter()
            .take(max_items)
            .map(|i| i.language.as_deref().and_then(clean))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_items_name_their_own_language() {
        let rss = br#"<?xml version="1.0"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>
<language>en</language>
<item><guid>a</guid><dc:language>be</dc:language><title>A</title></item>
<item><guid>b</guid><title>B</title></item>
<item xml:lang="ru"><guid>c</guid></item>
</channel></rss>"#;
        assert_eq!(
            item_languages(rss, 100),
            Some(vec![Some("be".into()), None, Some("ru".into())])
        );
    }

    #[test]
    fn atom_entries_and_json_items() {
        let atom = br#"<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
<entry xml:lang="be"><id>1</id></entry><entry><id>2</id></entry></feed>"#;
        assert_eq!(
            item_languages(atom, 100),
            Some(vec![Some("be".into()), None])
        );
        let json = br#"{"version":"https://jsonfeed.org/version/1.1","language":"en",
"items":[{"id":"1","language":"be"},{"id":"2"}]}"#;
        assert_eq!(
            item_languages(json, 100),
            Some(vec![Some("be".into()), None])
        );
        assert_eq!(item_languages(json, 1), Some(vec![Some("be".into())]));
    }
}
