//! The web site the front shows to everyone who is not a Kolokol peer:
//! static files, answered the way a plain static web server answers
//! (status lines, header fields, error pages), so that a probe sees one.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::FrontError;
use super::http::Head;

/// The page served at `/` when no site is set: a plain placeholder.
const BUILT_IN: &str = "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Under construction</title>\n</head>\n<body>\n<p>This site is under construction.</p>\n</body>\n</html>\n";

/// Files larger than this are not served (a site is pages and images).
const MAX_FILE: u64 = 256 * 1024 * 1024;

/// A static site.
#[derive(Debug)]
pub struct Site {
    root: Option<PathBuf>,
    server: String,
    started: SystemTime,
}

impl Site {
    /// The site in `root` (or the built-in page), sending `server` as its
    /// `Server` header.
    pub fn new(root: Option<PathBuf>, server: String) -> Result<Self, FrontError> {
        if let Some(r) = &root
            && !r.is_dir()
        {
            return Err(FrontError::Config(format!(
                "site {} is not a folder",
                r.display()
            )));
        }
        if server.contains(['\r', '\n']) {
            return Err(FrontError::Config("server must be one line".into()));
        }
        Ok(Self {
            root,
            server,
            started: SystemTime::now(),
        })
    }

    /// Answers one request; true when the connection is to close.
    pub(super) async fn answer<S: AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        head: &Head,
    ) -> std::io::Result<bool> {
        let close = head.wants_close();
        let get = match head.method.as_str() {
            "GET" => true,
            "HEAD" => false,
            _ => {
                self.error(s, 405, close).await?;
                return Ok(close);
            }
        };
        let Some(relative) = relative_path(&head.path) else {
            self.error(s, 400, true).await?;
            return Ok(true);
        };
        let Some(root) = &self.root else {
            if relative.as_os_str().is_empty() || relative == Path::new("index.html") {
                let body = BUILT_IN.as_bytes();
                self.send(
                    s,
                    200,
                    "text/html",
                    body.len() as u64,
                    self.started,
                    close,
                    &[],
                )
                .await?;
                if get {
                    s.write_all(body).await?;
                }
            } else {
                self.error(s, 404, close).await?;
            }
            return Ok(close);
        };
        let mut file_path = root.join(&relative);
        let Ok(meta) = tokio::fs::metadata(&file_path).await else {
            self.error(s, 404, close).await?;
            return Ok(close);
        };
        if meta.is_dir() {
            if !head.path.ends_with('/') {
                // As a static server does: to the folder's own URL.
                let location = format!("{}/", head.path);
                self.send(
                    s,
                    301,
                    "text/html",
                    0,
                    SystemTime::now(),
                    close,
                    &[("Location", &location)],
                )
                .await?;
                return Ok(close);
            }
            file_path.push("index.html");
        }
        let Ok(file) = tokio::fs::File::open(&file_path).await else {
            self.error(s, 404, close).await?;
            return Ok(close);
        };
        let meta = file.metadata().await?;
        if !meta.is_file() || meta.len() > MAX_FILE {
            self.error(s, 404, close).await?;
            return Ok(close);
        }
        let modified = meta.modified().unwrap_or(self.started);
        let len = meta.len();
        // One range, as static servers answer it (a web tree is read so);
        // a range they would not take is answered whole, as nginx does.
        let range = head
            .header("range")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| byte_range(v, len));
        let (status, start, count, extra) = match range {
            Some(Ok((start, end))) => (
                206,
                start,
                end - start + 1,
                Some(format!("bytes {start}-{end}/{len}")),
            ),
            Some(Err(())) => {
                let total = format!("bytes */{len}");
                self.send(
                    s,
                    416,
                    "text/html",
                    0,
                    SystemTime::now(),
                    close,
                    &[("Content-Range", &total)],
                )
                .await?;
                return Ok(close);
            }
            None => (200, 0, len, None),
        };
        let extra: Vec<(&str, &str)> = extra
            .as_deref()
            .map(|r| vec![("Content-Range", r)])
            .unwrap_or_default();
        self.send(
            s,
            status,
            content_type(&file_path),
            count,
            modified,
            close,
            &extra,
        )
        .await?;
        if get {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut file = file;
            file.seek(std::io::SeekFrom::Start(start)).await?;
            tokio::io::copy(&mut file.take(count), s).await?;
        }
        Ok(close)
    }

    /// An error page, as a static server's default ones look.
    pub(super) async fn error<S: AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        status: u16,
        close: bool,
    ) -> std::io::Result<()> {
        let line = format!("{status} {}", reason(status));
        // The layout of nginx's built-in error pages (src/http/
        // ngx_http_special_response.c), the most common on the web.
        let body = format!(
            "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n<hr><center>{}</center>\r\n</body>\r\n</html>\r\n",
            self.server
        );
        self.send(
            s,
            status,
            "text/html",
            body.len() as u64,
            SystemTime::now(),
            close,
            &[],
        )
        .await?;
        s.write_all(body.as_bytes()).await?;
        s.flush().await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send<S: AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        status: u16,
        content_type: &str,
        len: u64,
        modified: SystemTime,
        close: bool,
        extra: &[(&str, &str)],
    ) -> std::io::Result<()> {
        let mut h = format!(
            "HTTP/1.1 {status} {}\r\nServer: {}\r\nDate: {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n",
            reason(status),
            self.server,
            httpdate::fmt_http_date(SystemTime::now()),
        );
        if status == 200 || status == 206 {
            let secs = modified
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            h.push_str(&format!(
                "Last-Modified: {}\r\n",
                httpdate::fmt_http_date(modified)
            ));
            h.push_str(&format!(
                "Connection: {}\r\nETag: \"{secs:x}-{len:x}\"\r\nAccept-Ranges: bytes\r\n",
                if close { "close" } else { "keep-alive" }
            ));
        } else {
            h.push_str(&format!(
                "Connection: {}\r\n",
                if close { "close" } else { "keep-alive" }
            ));
        }
        for (name, value) in extra {
            h.push_str(&format!("{name}: {value}\r\n"));
        }
        h.push_str("\r\n");
        s.write_all(h.as_bytes()).await
    }
}

/// A `Range` header's single byte range within a file of `len` bytes:
/// `Some(Ok((first, last)))` to answer, `Some(Err(()))` when it starts
/// past the end (416), `None` to answer the whole file (no range, several,
/// or one not understood).
fn byte_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        // The last N bytes.
        let n: u64 = last.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len.checked_sub(1)?)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            len.saturating_sub(1)
        } else {
            let e: u64 = last.parse().ok()?;
            if e < start {
                return None;
            }
            e.min(len.saturating_sub(1))
        };
        (start, end)
    };
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

/// A request path as a path under the site's root: percent-decoded, with
/// no `..`, no NUL, nothing absolute. `None` for one that would leave it.
fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    if decoded.contains('\0') || !decoded.starts_with('/') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Not Allowed",
        206 => "Partial Content",
        416 => "Requested Range Not Satisfiable",
        _ => "Error",
    }
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("html" | "htm") => "text/html",
        Some("css") => "text/css",
        Some("js") => "application/javascript",
        Some("json") => "application/json",
        Some("txt") => "text/plain",
        Some("xml") => "text/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_stay_under_the_root() {
        assert_eq!(relative_path("/"), Some(PathBuf::new()));
        assert_eq!(relative_path("/a/b.html"), Some(PathBuf::from("a/b.html")));
        assert_eq!(relative_path("/a/./b"), Some(PathBuf::from("a/b")));
        assert_eq!(relative_path("/%D0%BD%D0%BE"), Some(PathBuf::from("но")));
        for bad in ["/../etc/passwd", "/a/%2e%2e/%2e%2e/x", "/a%00b", "relative"] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn single_byte_ranges_are_taken_as_static_servers_take_them() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(byte_range("bytes=900-", 1000), Some(Ok((900, 999))));
        assert_eq!(byte_range("bytes=990-2000", 1000), Some(Ok((990, 999))));
        assert_eq!(byte_range("bytes=-10", 1000), Some(Ok((990, 999))));
        assert_eq!(byte_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(byte_range("bytes=0-1,5-9", 1000), None);
        assert_eq!(byte_range("bytes=9-1", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
    }
}
