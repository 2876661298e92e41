//! Embeds the publisher files of `keys/*.toml` (not its subfolders, where
//! the demo newsroom lives) as the trust list a new data directory starts with.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=keys");
    let mut files: Vec<_> = std::fs::read_dir("keys")
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    let mut out =
        String::from("/// Publisher files shipped in `keys/`, as (file name, contents).\n");
    out.push_str("pub(crate) const BUNDLED_KEYS: &[(&str, &str)] = &[\n");
    for p in &files {
        let abs = std::fs::canonicalize(p).expect("keys file path");
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 file name");
        println!("cargo:rerun-if-changed={}", p.display());
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("bundled_keys.rs");
    std::fs::write(dest, out).expect("write bundled_keys.rs");
}
