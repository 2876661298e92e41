//! The `kolokol` binary: parses arguments and hands over to [`kolokol::cli`].

fn main() -> std::process::ExitCode {
    kolokol::cli::main()
}
