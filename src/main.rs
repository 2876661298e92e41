//! The `kolokol` binary: parses arguments and hands over to [`kolokol::cli`].

#![warn(missing_docs, clippy::unwrap_used)]

fn main() -> std::process::ExitCode {
    kolokol::cli::main()
}
