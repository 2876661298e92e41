//! How the command line reports: an error's causes said once each, and
//! colour only where a person reads it.

use std::io::IsTerminal;

/// An error and its causes, joined by ": ", each said once: an error that
/// already quotes its cause (as most wrapping errors here do, to read
/// well in logs) would otherwise print it twice, as in "Address already
/// in use (os error 98): Address already in use (os error 98)".
pub(super) fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // A wrapping error quotes its cause at its end; a cause found
        // elsewhere in the text is still said, as it may say more there.
        if text.is_empty() || out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether log lines get colour: only on a terminal, and never when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
pub(super) fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// [`colour`] for this process's standard error.
pub(super) fn stderr_colour() -> bool {
    colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:8080: {0}")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn a_cause_already_quoted_is_not_said_again() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(Wrapped(io)).context("the gateway could not start");
        assert_eq!(
            chain(&e),
            "the gateway could not start: cannot listen on 127.0.0.1:8080: Address already in use"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain(&plain), "outer: inner");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }
}
