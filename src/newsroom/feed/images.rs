//! The images a feed item shows, fetched once each and bundled with its
//! story.

use std::collections::HashMap;

use tracing::{debug, warn};
use url::Url;

use super::html::{attr_span, decode_entities, next_tag};
use super::{MAX_IMAGE_BYTES, MAX_IMAGES_PER_ITEM, MAX_MEDIA_BYTES_PER_ITEM};
use crate::newsroom::MediaFile;
use crate::newsroom::fetch::Fetcher;

/// Images fetched for one story, by source URL.
#[derive(Default)]
pub(super) struct ImageSet {
    by_url: HashMap<String, Option<String>>,
    media: Vec<MediaFile>,
    bytes: u64,
}

impl ImageSet {
    /// Fetches an image once; its bundle file name, or `None` (with a
    /// warning) when it cannot be had. A failed image never fails the item.
    pub(super) fn fetch(&mut self, url: &Url, fetcher: &Fetcher) -> Option<String> {
        if let Some(done) = self.by_url.get(url.as_str()) {
            return done.clone();
        }
        let result = if self.media.len() >= MAX_IMAGES_PER_ITEM {
            warn!("{url}: image left out: more than {MAX_IMAGES_PER_ITEM} images in one story");
            None
        } else {
            match fetcher.get(url, MAX_IMAGE_BYTES, None) {
                Ok(f) if self.bytes + f.bytes.len() as u64 > MAX_MEDIA_BYTES_PER_ITEM => {
                    warn!(
                        "{url}: image left out: the story's images would pass {MAX_MEDIA_BYTES_PER_ITEM} bytes"
                    );
                    None
                }
                Ok(f) => match sniff_image(&f.bytes) {
                    Some((ext, media_type)) => {
                        let hash = blake3::hash(&f.bytes);
                        let name = format!("img-{}.{ext}", &hash.to_hex()[..16]);
                        if !self.media.iter().any(|m| m.name == name) {
                            self.bytes += f.bytes.len() as u64;
                            self.media.push(MediaFile {
                                name: name.clone(),
                                media_type: media_type.into(),
                                bytes: f.bytes,
                            });
                        }
                        Some(name)
                    }
                    None => {
                        warn!("{url}: image left out: not a PNG, JPEG, GIF, WebP or AVIF image");
                        None
                    }
                },
                Err(e) => {
                    warn!("image left out: {e}");
                    None
                }
            }
        };
        self.by_url.insert(url.to_string(), result.clone());
        result
    }

    pub(super) fn into_media(self) -> Vec<MediaFile> {
        self.media
    }
}

/// The image format, by the bytes themselves rather than what a server
/// claims. SVG is not imported: it can carry scripts.
fn sniff_image(b: &[u8]) -> Option<(&'static str, &'static str)> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(("png", "image/png"))
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(("jpg", "image/jpeg"))
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some(("gif", "image/gif"))
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some(("webp", "image/webp"))
    } else if b.len() >= 12 && &b[4..8] == b"ftyp" && (&b[8..12] == b"avif" || &b[8..12] == b"avis")
    {
        Some(("avif", "image/avif"))
    } else {
        None
    }
}

pub(super) fn resolve(base: Option<&Url>, href: &str) -> Option<Url> {
    let href = decode_entities(href.trim());
    let url = match Url::parse(&href) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => match base {
            Some(b) => b.join(&href).ok()?,
            None => {
                warn!("{href}: left out: a relative URL in a feed read from a file");
                return None;
            }
        },
        Err(e) => {
            warn!("{href}: left out: {e}");
            return None;
        }
    };
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// Fetches the images `<img src>` points at and points each `src` at the
/// bundled copy; images that cannot be fetched keep their address.
pub(super) fn rewrite_images(
    html: &str,
    base: Option<&Url>,
    fetcher: &Fetcher,
    images: &mut ImageSet,
) -> String {
    let mut out = String::with_capacity(html.len());
    let mut copied = 0;
    let mut pos = 0;
    while let Some(tag) = next_tag(html, pos) {
        pos = tag.end;
        if tag.name != "img" || tag.closing {
            continue;
        }
        let text = &html[tag.start..tag.end];
        let Some((s, e)) = attr_span(text, "src") else {
            continue;
        };
        let src = &text[s..e];
        if src.starts_with("media/") {
            continue;
        }
        let Some(url) = resolve(base, src) else {
            continue;
        };
        if let Some(name) = images.fetch(&url, fetcher) {
            debug!("{url} bundled as media/{name}");
            out.push_str(&html[copied..tag.start + s]);
            out.push_str("media/");
            out.push_str(&name);
            copied = tag.start + e;
        }
    }
    out.push_str(&html[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_sniffed() {
        assert_eq!(
            sniff_image(b"\x89PNG\r\n\x1a\nrest").map(|s| s.0),
            Some("png")
        );
        assert_eq!(sniff_image(b"<svg xmlns=...>"), None);
        assert_eq!(sniff_image(b""), None);
    }
}
