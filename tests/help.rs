//! The built binary's help: the global options under their own heading,
//! said once; an "Examples:" block in the long help of each main command;
//! and `demo --data-dir` using the folder it is given.

mod common;

use std::process::Command;

use common::process::{BIN, s};

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--help")
        .env_remove("KOLOKOL_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The main commands, each with its long help's examples.
const MAIN: &[&[&str]] = &[
    &["node"],
    &["status"],
    &["trust", "add"],
    &["trust", "list"],
    &["newsroom", "init"],
    &["newsroom", "share"],
    &["publish"],
    &["import"],
    &["export"],
    &["verify"],
    &["inspect"],
    &["store", "stats"],
    &["store", "check"],
    &["peer", "add"],
    &["seal"],
    &["wipe"],
    &["demo"],
];

#[test]
fn global_options_have_one_heading_and_main_commands_have_examples() {
    for cmd in MAIN {
        let text = help(cmd);
        assert_eq!(
            text.matches("Global options:").count(),
            1,
            "{cmd:?}: {text}"
        );
        // Each global option is listed once, under that heading.
        let global = &text[text.find("Global options:").unwrap()..];
        for flag in ["--data-dir", "--verbose", "--log-level", "--log-format"] {
            assert!(global.contains(flag), "{cmd:?}: {flag}");
        }
        let options = &text[..text.find("Global options:").unwrap()];
        assert!(!options.contains("--log-format"), "{cmd:?}");
        // The log formats are described once.
        assert_eq!(text.matches("log collectors").count(), 1, "{cmd:?}");
        let examples = text
            .find("Examples:")
            .unwrap_or_else(|| panic!("{cmd:?}: no examples in {text}"));
        let block = &text[examples..];
        let program = format!("kolokol {}", cmd[0]);
        assert!(
            block
                .lines()
                .any(|l| l.trim_start().starts_with("kolokol") && l.contains(cmd[cmd.len() - 1])),
            "{cmd:?}: no example of {program} in {block}"
        );
    }
    // The short help stays short: no examples there.
    let out = Command::new(BIN).args(["node", "-h"]).output().unwrap();
    assert!(!String::from_utf8(out.stdout).unwrap().contains("Examples:"));
}

#[test]
fn demo_uses_the_data_directory_given() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("demo-data");
    let out = Command::new(BIN)
        .args(["--data-dir", s(&data), "demo"])
        .args(["--gateway", "127.0.0.1:0", "--exit-after-publish"])
        .env_remove("KOLOKOL_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(s(&data)), "{stdout}");
    assert!(data.join("newsroom").is_dir());
    assert!(data.join("articles").is_dir());
}

/// Splits a shell line into words: spaces separate, single quotes group.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

#[test]
fn every_example_parses() {
    use clap::Parser;
    let mut checked = 0;
    for cmd in MAIN {
        let text = help(cmd);
        let block = &text[text.find("Examples:").unwrap()..];
        // Lines continued with a backslash are one command.
        let joined = block.replace("\\\n", " ");
        for line in joined.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line == "Examples:" {
                continue;
            }
            let mut args = words(line);
            // Environment assignments before the command.
            while args
                .first()
                .is_some_and(|a| a.contains('=') && !a.starts_with('-'))
            {
                args.remove(0);
            }
            assert_eq!(args[0], "kolokol", "{line}");
            if let Err(e) = kolokol::cli::Cli::try_parse_from(&args) {
                panic!("{cmd:?}: the example {line:?} does not parse: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= MAIN.len() * 2, "only {checked} examples");
}
