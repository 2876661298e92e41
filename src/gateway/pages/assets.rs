//! What pages load besides themselves: the stylesheet, the icon, and the
//! media files of bundles.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::layout::{error_page, store_error};
use crate::gateway::GatewayState;
use crate::gateway::locale::Locale;
use crate::proto::BundleId;

/// The stylesheet, built in so that no page needs anything from elsewhere.
const STYLE: &str = include_str!("../style.css");
/// The bell, the project's emblem, as the pages' icon.
const ICON: &[u8] = include_bytes!("../../demo/stories/bell.png");

/// The stylesheet: the only one pages use, served by the node itself.
/// Like every response of the gateway it is `no-store` (see `guard`), so
/// there is no ETag to revalidate: the browser keeps nothing to compare.
pub(crate) async fn style() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        STYLE,
    )
        .into_response()
}

/// The pages' icon, also at `/favicon.ico` where browsers look for it
/// unasked.
pub(crate) async fn icon() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
        ICON,
    )
        .into_response()
}

/// Media types served for display in the page; anything else is offered
/// as a download only.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "audio/mpeg",
    "audio/ogg",
    "video/mp4",
    "video/webm",
];

/// A media file of a bundle, with its type from the signed manifest. It
/// is never cached, though bundles never change: a browser's cache would
/// keep what the reader looked at on the device, outside the store.
pub(crate) async fn media(
    State(state): State<GatewayState>,
    Path((id, path)): Path<(String, String)>,
    loc: Locale,
) -> Response {
    let not_found = || error_page(&loc, StatusCode::NOT_FOUND, &loc.t("error-no-media"));
    let Ok(id) = id.parse::<BundleId>() else {
        return not_found();
    };
    let stored = match state.store().manifest(&id) {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(),
        Err(e) => {
            // The error may name a bundle: at debug only.
            tracing::warn!("gateway: the store could not be read");
            tracing::debug!("gateway: {e}");
            return store_error(&loc, StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    if state.trusted().by_key(&stored.manifest.publisher).is_none() {
        return not_found();
    }
    // The body (entry 0) is shown only sanitized, in its page.
    let Some(entry) = stored
        .manifest
        .entries
        .iter()
        .skip(1)
        .find(|e| e.path == path)
    else {
        return not_found();
    };
    let mut h = HeaderMap::new();
    let media_type = entry.media_type.to_ascii_lowercase();
    let inline = INLINE_TYPES.contains(&media_type.as_str());
    let content_type = if inline {
        HeaderValue::from_str(&media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    } else {
        HeaderValue::from_static("application/octet-stream")
    };
    h.insert(header::CONTENT_TYPE, content_type);
    if !inline {
        h.insert(header::CONTENT_DISPOSITION, attachment(&entry.path));
    }
    // Opened on its own, a media file runs nothing.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    let hash = entry.hash;
    let store_state = state.clone();
    let bytes = match tokio::task::spawn_blocking(move || store_state.store().blob(&hash)).await {
        Ok(Ok(Some(b))) => b,
        Ok(Ok(None)) => return not_found(),
        Ok(Err(e)) => {
            // The error may name a bundle: at debug only.
            tracing::warn!("gateway: the store could not be read");
            tracing::debug!("gateway: {e}");
            return store_error(&loc, StatusCode::INTERNAL_SERVER_ERROR);
        }
        Err(_) => {
            return store_error(&loc, StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    (h, bytes).into_response()
}

/// `attachment` with the entry's file name: an ASCII-only `filename` (any
/// other character made `_`) for every browser, and `filename*` with the
/// UTF-8 name percent-encoded (RFC 6266, RFC 8187). Entry paths are safe
/// paths already; this keeps the header itself plain ASCII with no quote
/// or separator a browser could misread.
fn attachment(path: &str) -> HeaderValue {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn download_names_are_ascii_with_the_utf8_name_beside() {
        assert_eq!(
            attachment("media/report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            attachment("media/доклад 1.pdf"),
            "attachment; filename=\"_______1.pdf\"; filename*=UTF-8''%D0%B4%D0%BE%D0%BA%D0%BB%D0%B0%D0%B4%201.pdf"
        );
    }
}
