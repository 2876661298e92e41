//! A small, bounded HTTP client for importing a newsroom's feed: its feed
//! document, article pages and images.
//!
//! Everything here is bounded, because the other end is a web server that
//! may be slow, broken or taken over: a connect timeout and an overall
//! timeout per request, a byte cap on every body enforced while reading,
//! at most [`MAX_REDIRECTS`] redirects (each one checked again for its
//! scheme and host), and only `http` and `https`.

use std::io::Read;
use std::time::Duration;

use thiserror::Error;
use url::Url;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;
/// Default time allowed to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for a whole request, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a fetch failed.
#[derive(Debug, Error)]
pub enum FetchError {
    /// Only `http` and `https` are fetched.
    #[error("{url}: only http and https URLs are fetched")]
    Scheme {
        /// The URL.
        url: String,
    },
    /// The host is not one the caller allows.
    #[error("{url}: {host} is not the newsroom's own server (allowed: {allowed})")]
    HostNotAllowed {
        /// The URL.
        url: String,
        /// Its host.
        host: String,
        /// The hosts that are allowed.
        allowed: String,
    },
    /// The server answered with an error status.
    #[error("{url}: the server answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body is larger than the cap.
    #[error("{url}: larger than the limit of {cap} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        cap: u64,
    },
    /// Too many redirects, or a redirect without a usable location.
    #[error("{url}: {reason}")]
    Redirect {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The connection failed or timed out.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// A fetched body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL the body came from, after redirects.
    pub url: Url,
    /// The `Content-Type` the server gave, if any.
    pub content_type: Option<String>,
    /// The body, at most the cap asked for.
    pub bytes: Vec<u8>,
}

/// A blocking HTTP client with timeouts, size caps and checked redirects.
#[derive(Debug, Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new(DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT)
    }
}

impl Fetcher {
    /// A client with the given connect and overall timeouts.
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(connect_timeout)
            .timeout(timeout)
            // Redirects are followed here, one by one, so that every hop
            // is checked for its scheme and host.
            .redirects(0)
            .user_agent(concat!(
                "kolokol/",
                env!("CARGO_PKG_VERSION"),
                " (feed import)"
            ))
            .build();
        Self { agent }
    }

    /// Fetches `url`, reading at most `cap` bytes of body. When
    /// `allowed_hosts` is given, the URL and every redirect must stay on
    /// one of those hosts.
    pub fn get(
        &self,
        url: &Url,
        cap: u64,
        allowed_hosts: Option<&[String]>,
    ) -> Result<Fetched, FetchError> {
        let mut current = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            check_url(&current, allowed_hosts)?;
            let response = match self.agent.request_url("GET", &current).call() {
                Ok(r) => r,
                Err(ureq::Error::Status(status, _)) => {
                    return Err(FetchError::Status {
                        url: current.to_string(),
                        status,
                    });
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(FetchError::Transport {
                        url: current.to_string(),
                        reason: t.to_string(),
                    });
                }
            };
            let status = response.status();
            if (300..400).contains(&status) {
                let location = response
                    .header("location")
                    .ok_or_else(|| FetchError::Redirect {
                        url: current.to_string(),
                        reason: format!("HTTP {status} without a Location header"),
                    })?;
                current = current.join(location).map_err(|e| FetchError::Redirect {
                    url: current.to_string(),
                    reason: format!("redirect to an unusable location {location:?}: {e}"),
                })?;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(FetchError::Status {
                    url: current.to_string(),
                    status,
                });
            }
            // Refuse early when the server announces too much; the read
            // below enforces the cap whatever the header says.
            if let Some(len) = response
                .header("content-length")
                .and_then(|l| l.trim().parse::<u64>().ok())
                && len > cap
            {
                return Err(FetchError::TooLarge {
                    url: current.to_string(),
                    cap,
                });
            }
            let content_type = response.header("content-type").map(str::to_owned);
            let mut bytes = Vec::new();
            response
                .into_reader()
                .take(cap.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| FetchError::Transport {
                    url: current.to_string(),
                    reason: format!("reading the body: {e}"),
                })?;
            if bytes.len() as u64 > cap {
                return Err(FetchError::TooLarge {
                    url: current.to_string(),
                    cap,
                });
            }
            return Ok(Fetched {
                url: current,
                content_type,
                bytes,
            });
        }
        Err(FetchError::Redirect {
            url: url.to_string(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// Checks that `url` is http or https and, when a list is given, on one of
/// the allowed hosts.
pub fn check_url(url: &Url, allowed_hosts: Option<&[String]>) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Scheme {
            url: url.to_string(),
        });
    }
    if let Some(allowed) = allowed_hosts {
        let host = url.host_str().unwrap_or_default();
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return Err(FetchError::HostNotAllowed {
                url: url.to_string(),
                host: host.to_owned(),
                allowed: if allowed.is_empty() {
                    "none: the feed is a file and the newsroom has no homepage".into()
                } else {
                    allowed.join(", ")
                },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_allowed_hosts() {
        let allowed = vec!["news.example".to_owned()];
        let ok = Url::parse("https://NEWS.example/a").unwrap();
        assert!(check_url(&ok, Some(&allowed)).is_ok());
        let other = Url::parse("https://evil.example/a").unwrap();
        assert!(matches!(
            check_url(&other, Some(&allowed)),
            Err(FetchError::HostNotAllowed { .. })
        ));
        assert!(check_url(&other, None).is_ok());
        let file = Url::parse("file:///etc/passwd").unwrap();
        assert!(matches!(
            check_url(&file, None),
            Err(FetchError::Scheme { .. })
        ));
    }
}
