//! Reading HTTP/1.x request heads off the front's connections, bounded.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head taken, as nginx's default header buffers
/// (`large_client_header_buffers 4 8k`) roughly allow.
pub(super) const MAX_HEAD: usize = 16 * 1024;

/// Most header fields parsed.
const MAX_HEADERS: usize = 64;

/// Why no head came.
#[derive(Debug)]
pub(super) enum HeadError {
    /// Not HTTP.
    Malformed,
    /// Over [`MAX_HEAD`].
    TooLarge,
    /// The connection failed.
    Io(std::io::Error),
}

/// One request head.
#[derive(Debug)]
pub(super) struct Head {
    /// `GET`, `HEAD`, ...
    pub(super) method: String,
    /// The path, without the query.
    pub(super) path: String,
    /// HTTP/1.0 (0) or 1.1 (1).
    pub(super) minor: u8,
    /// Header fields, names in lower case.
    pub(super) headers: Vec<(String, Vec<u8>)>,
    /// The head as it came, for the backend.
    pub(super) raw: Vec<u8>,
}

impl Head {
    /// The value of a header field, if present.
    pub(super) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    }

    /// Whether the client asks to close after this request.
    pub(super) fn wants_close(&self) -> bool {
        self.has_token("connection", "close")
            || (self.minor == 0 && !self.has_token("connection", "keep-alive"))
    }

    /// Whether this is a WebSocket upgrade (RFC 6455 §4.1) on `secret`.
    /// The path is compared in constant time: timing tells a prober
    /// nothing of how much of a guess was right.
    pub(super) fn is_upgrade_to(&self, secret: &str) -> bool {
        let same_path = self.path.len() == secret.len()
            && self
                .path
                .bytes()
                .zip(secret.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same_path
            && self.method == "GET"
            && self.minor == 1
            && self.has_token("upgrade", "websocket")
            && self.has_token("connection", "upgrade")
            && self.header("sec-websocket-key").is_some()
    }
}

/// Reads heads one after another off a connection, keeping what came
/// after a head for the next one (or for the backend).
#[derive(Default)]
pub(super) struct HeadReader {
    buf: Vec<u8>,
}

impl HeadReader {
    /// The next head, or `None` when the client closed between requests.
    pub(super) async fn next<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
    ) -> Result<Option<Head>, HeadError> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(head) = parse(&mut self.buf)? {
                return Ok(Some(head));
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            let room = (MAX_HEAD - self.buf.len()).min(chunk.len());
            let n = s.read(&mut chunk[..room]).await.map_err(HeadError::Io)?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(HeadError::Malformed)
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// What came after the last head.
    pub(super) fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// A head parsed off the front of `buf` (and removed from it), or `None`
/// when more bytes are needed.
fn parse(buf: &mut Vec<u8>) -> Result<Option<Head>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let target = req.path.unwrap_or("/");
    let head = Head {
        method: req.method.unwrap_or("").to_owned(),
        path: target.split('?').next().unwrap_or("").to_owned(),
        minor: req.version.unwrap_or(1),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect(),
        raw: buf[..len].to_vec(),
    };
    buf.drain(..len);
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn heads(bytes: &[u8]) -> Vec<Result<Option<Head>, HeadError>> {
        let mut r = HeadReader::default();
        let mut s = bytes;
        let mut out = Vec::new();
        loop {
            let h = r.next(&mut s).await;
            let stop = !matches!(h, Ok(Some(_)));
            out.push(h);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn heads_come_one_by_one_and_the_upgrade_needs_every_part() {
        let secret = "/0123456789abcdefg";
        let up = format!(
            "GET {secret} HTTP/1.1\r\nHost: m\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let two = format!("GET /?q=1 HTTP/1.1\r\nHost: m\r\n\r\n{up}");
        let got = heads(two.as_bytes()).await;
        assert_eq!(got.len(), 3);
        let first = got[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!((first.method.as_str(), first.path.as_str()), ("GET", "/"));
        assert!(!first.is_upgrade_to(secret));
        let second = got[1].as_ref().unwrap().as_ref().unwrap();
        assert!(second.is_upgrade_to(secret));
        assert_eq!(second.raw, up.as_bytes());
        assert!(matches!(got[2], Ok(None)));
        for wrong in [
            up.replace(secret, "/0123456789abcdefh"),
            up.replace("GET", "POST"),
            up.replace("Upgrade: websocket\r\n", ""),
            up.replace("keep-alive, Upgrade", "keep-alive"),
            up.replace("Sec-WebSocket-Key: x\r\n", ""),
        ] {
            let got = heads(wrong.as_bytes()).await;
            assert!(
                !got[0]
                    .as_ref()
                    .unwrap()
                    .as_ref()
                    .unwrap()
                    .is_upgrade_to(secret),
                "{wrong}"
            );
        }
    }

    #[tokio::test]
    async fn what_is_not_http_or_too_long_is_refused() {
        let got = heads(b"\x13/multistream/1.0.0\n").await;
        assert!(matches!(got[0], Err(HeadError::Malformed)));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let got = heads(long.as_bytes()).await;
        assert!(matches!(got[0], Err(HeadError::TooLarge)));
        let got = heads(b"GET / HT").await;
        assert!(matches!(got[0], Err(HeadError::Malformed)), "cut short");
    }
}
