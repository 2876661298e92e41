//! A small, bounded HTTP client for importing a newsroom's feed: its feed
//! document, article pages and images.
//!
//! Everything here is bounded, because the other end is a web server that
//! may be slow, broken or taken over: a connect timeout and an overall
//! timeout per request, a byte cap on every body enforced while reading,
//! at most [`MAX_REDIRECTS`] redirects (each one checked again for its
//! scheme and host), and only `http` and `https`. Names are resolved by
//! the fetcher itself, every address checked, and the connection made to
//! the checked addresses (ureq's `Resolver`), so a name that resolves, or
//! re-resolves, to this machine or a private network is refused.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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
    /// The host is on this machine or its local network, and the feed is
    /// not: a feed from elsewhere must not make the importer reach inward.
    #[error("{url}: {host} is a local or private address, and the feed is not on one")]
    LocalHost {
        /// The URL.
        url: String,
        /// Its host.
        host: String,
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

/// Resolves `host:port` to socket addresses (the system resolver by
/// default; another one for tests or a caller with its own DNS).
pub type Resolve = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// A resolved address the fetcher refused, carried through ureq's error.
#[derive(Debug, Error)]
#[error("{0} is a local or private address")]
struct RefusedAddress(IpAddr);

/// The resolver ureq connects through: every address checked, and only
/// checked ones handed back, so nothing resolves the name a second time.
struct Checked {
    resolve: Resolve,
    local_ok: bool,
}

impl ureq::Resolver for Checked {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let addrs = (self.resolve)(netloc)?;
        if !self.local_ok
            && let Some(bad) = addrs.iter().find(|a| is_local_ip(a.ip()))
        {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                RefusedAddress(bad.ip()),
            ));
        }
        Ok(addrs)
    }
}

/// A blocking HTTP client with timeouts, size caps and checked redirects.
#[derive(Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
    connect_timeout: Duration,
    timeout: Duration,
    resolve: Resolve,
    /// Whether hosts on this machine or its local network may be fetched.
    local_ok: bool,
    /// Every request goes through this proxy, and nothing directly.
    proxy: Option<ureq::Proxy>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("local_ok", &self.local_ok)
            .field("proxied", &self.proxy.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new(DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT)
    }
}

fn system_resolve(netloc: &str) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    Ok(netloc.to_socket_addrs()?.collect())
}

impl Fetcher {
    /// A client with the given connect and overall timeouts.
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Self {
        let resolve: Resolve = Arc::new(system_resolve);
        Self {
            agent: build_agent(connect_timeout, timeout, resolve.clone(), false, None),
            connect_timeout,
            timeout,
            resolve,
            local_ok: false,
            proxy: None,
        }
    }

    fn rebuilt(mut self) -> Self {
        self.agent = build_agent(
            self.connect_timeout,
            self.timeout,
            self.resolve.clone(),
            self.local_ok,
            self.proxy.clone(),
        );
        self
    }

    /// Sends every request through `proxy` (the node's `--proxy`), so
    /// that what is fetched is seen on the wire only as traffic to the
    /// proxy; with a proxy that fails, the fetch fails, and nothing is
    /// fetched directly. Names are handed to the proxy unresolved.
    pub fn via_proxy(mut self, proxy: &crate::net::proxy::Proxy) -> Result<Self, FetchError> {
        let p = proxy.for_fetch().map_err(|e| FetchError::Transport {
            url: format!("proxy {}:{}", proxy.host, proxy.port),
            reason: e.to_string(),
        })?;
        self.proxy = Some(p);
        Ok(self.rebuilt())
    }

    /// Whether requests go through a proxy.
    pub fn is_proxied(&self) -> bool {
        self.proxy.is_some()
    }

    /// Allows hosts on this machine or its local network (for a feed that
    /// is itself on one, or read from a file the newsroom wrote).
    pub fn allow_local(mut self, ok: bool) -> Self {
        self.local_ok = ok;
        self.rebuilt()
    }

    /// Resolves names with `resolve` instead of the system resolver; its
    /// addresses are checked like any others.
    pub fn with_resolver(mut self, resolve: Resolve) -> Self {
        self.resolve = resolve;
        self.rebuilt()
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
            if !self.local_ok && is_local(&current) {
                return Err(FetchError::LocalHost {
                    url: current.to_string(),
                    host: current.host_str().unwrap_or_default().to_owned(),
                });
            }
            let response = match self.agent.request_url("GET", &current).call() {
                Ok(r) => r,
                Err(ureq::Error::Status(status, _)) => {
                    return Err(FetchError::Status {
                        url: current.to_string(),
                        status,
                    });
                }
                Err(ureq::Error::Transport(t)) => {
                    if let Some(addr) = refused_address(&t) {
                        return Err(FetchError::LocalHost {
                            url: current.to_string(),
                            host: format!(
                                "{} (resolved to {addr})",
                                current.host_str().unwrap_or_default()
                            ),
                        });
                    }
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

fn build_agent(
    connect_timeout: Duration,
    timeout: Duration,
    resolve: Resolve,
    local_ok: bool,
    proxy: Option<ureq::Proxy>,
) -> ureq::Agent {
    let builder = ureq::AgentBuilder::new()
        .timeout_connect(connect_timeout)
        .timeout(timeout)
        // Redirects are followed here, one by one, so that every hop is
        // checked for its scheme and host.
        .redirects(0)
        .user_agent(concat!(
            "kolokol/",
            env!("CARGO_PKG_VERSION"),
            " (feed import)"
        ));
    match proxy {
        // Through a proxy, the only name resolved here is the proxy's own
        // (often on this machine); the target's name goes to the proxy,
        // and a target given as an address is checked in `get`.
        Some(p) => builder
            .proxy(p)
            .resolver(Checked {
                resolve,
                local_ok: true,
            })
            .build(),
        None => builder.resolver(Checked { resolve, local_ok }).build(),
    }
}

/// The address the resolver refused, if that is why `t` failed.
fn refused_address(t: &ureq::Transport) -> Option<IpAddr> {
    let mut source = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(RefusedAddress(addr)) = io.get_ref().and_then(|i| i.downcast_ref())
        {
            return Some(*addr);
        }
        source = e.source();
    }
    None
}

/// Whether `url`'s host is this machine or a private, link-local or
/// otherwise non-global address, written as such (`localhost`, an IP
/// literal). A name that resolves to such an address is caught when it is
/// resolved, by [`is_local_ip`].
pub fn is_local(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(a)) => is_local_ip(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => is_local_ip(IpAddr::V6(a)),
        None => false,
    }
}

/// Whether an address is not a global unicast one: loopback, private,
/// shared (100.64/10), link-local, unspecified, broadcast, multicast,
/// reserved, unique- or site-local IPv6, or an IPv6 address that embeds
/// such an IPv4 address (mapped, compatible, NAT64 `64:ff9b::/96` and
/// `64:ff9b:1::/48`, 6to4 `2002::/16`).
pub fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let [b0, b1, b2, _] = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || b0 == 0 // "this network"
                || b0 >= 240 // reserved
                || (b0 == 100 && (64..128).contains(&b1)) // shared, RFC 6598
                || (b0 == 192 && b1 == 0 && b2 == 0) // IETF protocol assignments
                || (b0 == 198 && (18..20).contains(&b1)) // benchmarking
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let o = a.octets();
            let v4 =
                |i: usize| IpAddr::V4(std::net::Ipv4Addr::new(o[i], o[i + 1], o[i + 2], o[i + 3]));
            if let Some(m) = a.to_ipv4_mapped() {
                return is_local_ip(IpAddr::V4(m));
            }
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[..6] == [0; 6] && is_local_ip(v4(12))) // IPv4-compatible
                || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && is_local_ip(v4(12))) // NAT64
                || (s[..3] == [0x64, 0xff9b, 1]) // local-use NAT64
                || (s[0] == 0x2002 && is_local_ip(v4(2))) // 6to4
        }
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
    fn local_and_private_hosts_are_told_apart() {
        for local in [
            "http://localhost/x",
            "http://a.localhost/",
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://[64:ff9b::a00:1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:c0a8:101::1]/",
            "http://[::127.0.0.1]/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
        ] {
            assert!(is_local(&Url::parse(local).unwrap()), "{local}");
        }
        for global in [
            "https://example.org/",
            "http://93.184.216.34/",
            "http://[2001:db8::1]/",
            "http://[64:ff9b::5db8:d822]/",
        ] {
            assert!(!is_local(&Url::parse(global).unwrap()), "{global}");
        }
        // Refused before any connection is tried.
        let err = Fetcher::default()
            .get(&Url::parse("http://169.254.169.254/").unwrap(), 10, None)
            .unwrap_err();
        assert!(matches!(err, FetchError::LocalHost { .. }), "{err}");
    }

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
