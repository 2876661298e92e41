//! A publisher file as one line of text, for pasting into a chat or
//! showing as a QR code, and the fingerprint of a root key that people
//! compare aloud before they trust it.
//!
//! The text is [`TEXT_PREFIX`], then base32 (RFC 4648, no padding) of a
//! version byte, the file's bytes and a 4-byte checksum (blake3, keyed by
//! its own context). Base32 survives chat apps that change case or wrap
//! lines, and a QR code carries it in its compact alphanumeric mode. A
//! changed character fails the checksum, and the text's length is checked
//! against [`MAX_TEXT`] before anything is decoded.

use data_encoding::BASE32_NOPAD;
use thiserror::Error;

use super::MAX_PUBLISHER_FILE;
use crate::proto::PublicKey;

/// What every compact text starts with.
pub const TEXT_PREFIX: &str = "kolokol-publisher:";
/// The version byte of the encoding described above.
const VERSION: u8 = 1;
/// Bytes of checksum after the file.
const CHECKSUM_LEN: usize = 4;
/// The checksum's blake3 context: a checksum of another kind of text
/// never matches.
const CHECKSUM_CONTEXT: &str = "kolokol publisher text 1 checksum";
/// The fingerprint's blake3 context.
const FINGERPRINT_CONTEXT: &str = "kolokol root key fingerprint 1";
/// Bytes of hash in a fingerprint: 160 bits, 32 base32 characters.
const FINGERPRINT_BYTES: usize = 20;
/// Longest compact text taken, in characters after the prefix: a
/// publisher file at its limit, the version byte and the checksum.
pub const MAX_TEXT: usize = (MAX_PUBLISHER_FILE as usize + 1 + CHECKSUM_LEN).div_ceil(5) * 8;

/// Why a compact text was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShareError {
    /// It does not start with [`TEXT_PREFIX`].
    #[error("not a Kolokol publisher text: it does not start with {TEXT_PREFIX:?}")]
    NoPrefix,
    /// Longer than [`MAX_TEXT`].
    #[error("the publisher text is too large: {0} characters, at most {MAX_TEXT}")]
    TooLarge(usize),
    /// Not base32.
    #[error("the publisher text is damaged: {0} (check for a missing or changed character)")]
    BadEncoding(String),
    /// Too short to hold a version byte and a checksum.
    #[error("the publisher text is too short: it was cut off")]
    TooShort,
    /// The checksum does not match: a character was changed or lost.
    #[error(
        "the publisher text's checksum does not match: a character was changed or lost on the way"
    )]
    BadChecksum,
    /// A version this build does not read.
    #[error("the publisher text is of version {0}; this build reads version {VERSION}")]
    Version(u8),
    /// The file inside is not UTF-8.
    #[error("the publisher text does not hold a publisher file (not UTF-8 text)")]
    NotText,
    /// Too long for a QR code.
    #[error(
        "the publisher text is {0} characters, too many for a QR code; hand over the text or the file instead"
    )]
    QrTooLarge(usize),
    /// The image could not be encoded.
    #[error("cannot encode the QR code as PNG: {0}")]
    Png(String),
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let hash = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT)
        .update(body)
        .finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&hash.as_bytes()[..CHECKSUM_LEN]);
    out
}

/// The compact text of a publisher file's bytes.
pub fn encode_text(file: &[u8]) -> String {
    let mut body = Vec::with_capacity(file.len() + 1 + CHECKSUM_LEN);
    body.push(VERSION);
    body.extend_from_slice(file);
    let sum = checksum(&body);
    body.extend_from_slice(&sum);
    format!("{TEXT_PREFIX}{}", BASE32_NOPAD.encode(&body))
}

/// Whether `text` looks like a compact text (its prefix, after spaces),
/// as opposed to a publisher file's TOML.
pub fn is_text(text: &str) -> bool {
    text.trim_start()
        .get(..TEXT_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(TEXT_PREFIX))
}

/// The publisher file's text inside a compact text. Spaces and line
/// breaks inside it are ignored, and so is case (a chat app may have
/// wrapped or capitalized it). Not parsed here: the caller parses the
/// file as any other.
pub fn decode_text(text: &str) -> Result<String, ShareError> {
    let text = text.trim();
    let rest = match text.get(..TEXT_PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(TEXT_PREFIX) => &text[TEXT_PREFIX.len()..],
        _ => return Err(ShareError::NoPrefix),
    };
    // Counted before anything is copied or decoded.
    let len = rest.chars().filter(|c| !c.is_whitespace()).count();
    if len > MAX_TEXT {
        return Err(ShareError::TooLarge(len));
    }
    let digits: String = rest
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let body = BASE32_NOPAD
        .decode(digits.as_bytes())
        .map_err(|e| ShareError::BadEncoding(e.to_string()))?;
    if body.len() < 1 + CHECKSUM_LEN {
        return Err(ShareError::TooShort);
    }
    let (payload, sum) = body.split_at(body.len() - CHECKSUM_LEN);
    if checksum(payload) != sum {
        return Err(ShareError::BadChecksum);
    }
    if payload[0] != VERSION {
        return Err(ShareError::Version(payload[0]));
    }
    String::from_utf8(payload[1..].to_vec()).map_err(|_| ShareError::NotText)
}

/// Pixels per module of a QR code image: large enough for a phone's
/// camera across a table.
const QR_SCALE: usize = 8;
/// Light modules around the code, as the standard asks.
const QR_QUIET: usize = 4;

/// A grey-scale PNG image of a QR code of `text`.
pub fn qr_png(text: &str) -> Result<Vec<u8>, ShareError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)
        .map_err(|_| ShareError::QrTooLarge(text.len()))?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QR_QUIET) * QR_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % width + QR_QUIET, i / width + QR_QUIET);
        for y in my * QR_SCALE..(my + 1) * QR_SCALE {
            let row = y * side;
            pixels[row + mx * QR_SCALE..row + (mx + 1) * QR_SCALE].fill(0);
        }
    }
    let side = u32::try_from(side).map_err(|e| ShareError::Png(e.to_string()))?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let png_error = |e: png::EncodingError| ShareError::Png(e.to_string());
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(&pixels).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(out)
}

/// The fingerprint of a root key: 160 bits of a blake3 hash of it, as
/// eight groups of four base32 characters (`ABCD EFGH ...`), short
/// enough to read aloud over a phone and compare.
pub fn fingerprint(key: &PublicKey) -> String {
    let hash = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT)
        .update(&key.0)
        .finalize();
    let digits = BASE32_NOPAD.encode(&hash.as_bytes()[..FINGERPRINT_BYTES]);
    digits
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "name = \"x\"\nroot_key = \"ed25519:00\"\n";

    #[test]
    fn a_text_round_trips_whatever_chat_does_to_its_case_and_lines() {
        let text = encode_text(FILE.as_bytes());
        assert!(text.starts_with(TEXT_PREFIX));
        assert!(!text.contains('\n') && !text.contains(' '));
        assert_eq!(decode_text(&text).unwrap(), FILE);
        let mangled: String = text
            .to_lowercase()
            .chars()
            .enumerate()
            .flat_map(|(i, c)| if i % 20 == 19 { vec![c, '\n'] } else { vec![c] })
            .collect();
        assert_eq!(decode_text(&format!("  {mangled} \n")).unwrap(), FILE);
    }

    #[test]
    fn every_changed_character_is_caught() {
        let text = encode_text(FILE.as_bytes());
        for i in TEXT_PREFIX.len()..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let damaged = String::from_utf8(b).unwrap();
            assert!(decode_text(&damaged).is_err(), "position {i}");
        }
        assert_eq!(decode_text(&text[1..]), Err(ShareError::NoPrefix));
        let short = format!("{TEXT_PREFIX}{}", BASE32_NOPAD.encode(&[VERSION, 1, 2]));
        assert_eq!(decode_text(&short), Err(ShareError::TooShort));
    }

    #[test]
    fn a_text_over_the_cap_is_refused_before_it_is_decoded() {
        let huge = format!("{TEXT_PREFIX}{}", "!".repeat(MAX_TEXT + 1));
        assert_eq!(decode_text(&huge), Err(ShareError::TooLarge(MAX_TEXT + 1)));
        // A file at the limit still fits.
        let big = vec![b'a'; MAX_PUBLISHER_FILE as usize];
        let text = encode_text(&big);
        assert!(text.len() - TEXT_PREFIX.len() <= MAX_TEXT);
        assert_eq!(decode_text(&text).unwrap().len(), big.len());
    }

    #[test]
    fn a_fingerprint_is_eight_groups_of_four() {
        let a = fingerprint(&PublicKey([1; 32]));
        let groups: Vec<&str> = a.split(' ').collect();
        assert_eq!(groups.len(), 8, "{a}");
        assert!(groups.iter().all(|g| g.len() == 4));
        assert_ne!(a, fingerprint(&PublicKey([2; 32])));
        assert_eq!(a, fingerprint(&PublicKey([1; 32])));
    }
}
