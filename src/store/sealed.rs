//! The names a sealed store keeps its entries under.
//!
//! A plain key (see `tables`) names what it holds: a bundle id, a blob
//! hash, a publisher's key, a story id. Sealed, each such part becomes its
//! keyed name ([`Sealer::name`]), and the entry's value carries the plain
//! key inside its ciphertext so that scans still give it back. The table
//! byte stays, and so does the shape each scan needs:
//!
//! - a scan of one publisher's entries is a scan of its keyed name;
//! - sequence numbers keep their order within a publisher, shifted by a
//!   keyed offset (`Sealer::offset`), so that range reads still work but
//!   the stored numbers no longer match the publisher's public ones;
//! - log positions are the store's own counter and stay as they are;
//! - the catalog index keeps its order within a publisher's facet: the
//!   publisher and the facet (named with the publisher, so that two
//!   publishers' facets do not match) are keyed names and the time is
//!   shifted like a sequence number; its blocks are keyed by time alone
//!   (a story after the time would be a keyed name, out of order).

use super::catalog::FACET_LEN;
use super::tables::{
    BLOB, CERT, COUNTS, HEAD, INDEX, LOG, MANIFEST, META, META_LOG_CURSOR, META_PUBLISHER, MIRRORS,
    OLD_LOG, OLD_SEQ, PIN, REFS, REVOCATION, SEQ, STORY, VALUE,
};
use crate::seal::Sealer;

/// Names in META that are followed by an identifier, and are scanned by
/// that prefix: each is kept as one keyed part, the identifier as another.
const META_FAMILIES: [&[u8]; 2] = [META_PUBLISHER, META_LOG_CURSOR];

fn part(s: &Sealer, table: u8, index: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&s.name(&[table, index], bytes));
}

/// The sealed name of the plain key `key`, or, with `prefix`, of a scan
/// prefix that ends where one of the key's parts ends.
pub(super) fn sealed_key(s: &Sealer, key: &[u8], prefix: bool) -> Vec<u8> {
    let Some((&table, rest)) = key.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(1 + 2 * crate::seal::NAME_LEN);
    out.push(table);
    if rest.is_empty() && prefix {
        return out;
    }
    match table {
        META => match META_FAMILIES.iter().find(|f| rest.starts_with(f)) {
            Some(family) => {
                part(s, table, 0, family, &mut out);
                let id = &rest[family.len()..];
                if !(prefix && id.is_empty()) {
                    part(s, table, 1, id, &mut out);
                }
            }
            None => part(s, table, 0, rest, &mut out),
        },
        SEQ | OLD_SEQ if rest.len() == 40 || (prefix && rest.len() == 32) => {
            let publisher = &rest[..32];
            part(s, table, 0, publisher, &mut out);
            if let Some(seq) = rest.get(32..40) {
                let mut b = [0u8; 8];
                b.copy_from_slice(seq);
                let shifted = u128::from(u64::from_be_bytes(b)) + u128::from(s.offset(publisher));
                out.extend_from_slice(&shifted.to_be_bytes());
            }
        }
        STORY | PIN | REVOCATION if rest.len() > 32 || (prefix && rest.len() == 32) => {
            part(s, table, 0, &rest[..32], &mut out);
            if rest.len() > 32 {
                part(s, table, 1, &rest[32..], &mut out);
            }
        }
        INDEX | COUNTS if rest.len() >= 32 + FACET_LEN || (prefix && rest.len() == 32) => {
            let publisher = &rest[..32];
            part(s, table, 0, publisher, &mut out);
            if let Some(with_facet) = rest.get(..32 + FACET_LEN) {
                part(s, table, 1, with_facet, &mut out);
            }
            if let Some(time) = rest.get(32 + FACET_LEN..32 + FACET_LEN + 8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(time);
                let scope = [publisher, b"published"].concat();
                let shifted = u128::from(u64::from_be_bytes(b)) + u128::from(s.offset(&scope));
                out.extend_from_slice(&shifted.to_be_bytes());
            }
            if let Some(story) = rest.get(32 + FACET_LEN + 8..).filter(|r| !r.is_empty()) {
                part(s, table, 2, story, &mut out);
            }
        }
        // Numbers stay, so that values are still stored in order.
        LOG | OLD_LOG | VALUE => out.extend_from_slice(rest),
        MANIFEST | BLOB | REFS | HEAD | CERT | MIRRORS => part(s, table, 0, rest, &mut out),
        // Any other shape: one keyed part, which point reads find.
        _ => part(s, table, 0, rest, &mut out),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::{DataKey, Sealer};

    fn k(table: u8, parts: &[&[u8]]) -> Vec<u8> {
        super::super::tables::key(table, parts)
    }

    #[test]
    fn scans_keep_their_prefix_and_sequences_their_order() {
        let s = Sealer::new(&DataKey::random());
        let p = [9u8; 32];
        let seq = |n: u64| sealed_key(&s, &k(SEQ, &[&p, &n.to_be_bytes()]), false);
        let pre = sealed_key(&s, &k(SEQ, &[&p]), true);
        assert!(seq(1).starts_with(&pre) && seq(u64::MAX).starts_with(&pre));
        assert!(seq(1) < seq(2) && seq(2) < seq(1000) && seq(1000) < seq(u64::MAX));
        let story = sealed_key(&s, &k(STORY, &[&p, &[1; 16]]), false);
        assert!(story.starts_with(&sealed_key(&s, &k(STORY, &[&p]), true)));
        let cursor = sealed_key(&s, &k(META, &[META_LOG_CURSOR, b"peer"]), false);
        assert!(cursor.starts_with(&sealed_key(&s, &k(META, &[META_LOG_CURSOR]), true)));
        assert_eq!(
            sealed_key(&s, &k(LOG, &[&7u64.to_be_bytes()]), false),
            k(LOG, &[&7u64.to_be_bytes()])
        );
        let f = [3u8; FACET_LEN];
        let at = |t: u64, st: u8| {
            sealed_key(&s, &k(INDEX, &[&p, &f, &t.to_be_bytes(), &[st; 16]]), false)
        };
        let facet = sealed_key(&s, &k(INDEX, &[&p, &f]), false);
        assert_eq!(facet, sealed_key(&s, &k(INDEX, &[&p, &f]), true));
        assert!(
            at(5, 1).starts_with(&facet)
                && at(5, 1).starts_with(&sealed_key(&s, &k(INDEX, &[&p]), true))
        );
        assert!(at(5, 9) < at(6, 1) && at(6, 1) < at(1 << 40, 0));
        assert_ne!(
            sealed_key(&s, &k(INDEX, &[&p, &f]), true),
            sealed_key(&s, &k(INDEX, &[&[8u8; 32], &f]), true)[..]
        );
        // No part of a publisher's key survives.
        assert!(!seq(1).windows(8).any(|w| w == &p[..8]));
    }
}
