//! The node's address book, kept between runs as one bounded value (see
//! `net::book` for what it holds). The store only keeps the bytes: it is
//! the node's own record, never sent to peers.

use super::tables::{META, META_ADDRESS_BOOK, key};
use super::{Op, Store, StoreError};

/// The largest address book the store keeps or gives back: above what a
/// full book encodes to, so the bound only stops a damaged value.
pub const MAX_ADDRESS_BOOK_BYTES: usize = 1 << 20;

impl Store {
    /// The saved address book, if there is one within its bound. A value
    /// over the bound is left out (the node starts with a fresh book).
    pub fn address_book(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.kv.get(&key(META, &[META_ADDRESS_BOOK]))?;
        Ok(value.filter(|v| v.len() <= MAX_ADDRESS_BOOK_BYTES))
    }

    /// Keeps `book` as the saved address book, in place of the last.
    pub fn set_address_book(&self, book: &[u8]) -> Result<(), StoreError> {
        if book.len() > MAX_ADDRESS_BOOK_BYTES {
            return Err(StoreError::Corrupt(format!(
                "an address book of {} bytes, over the bound of {MAX_ADDRESS_BOOK_BYTES}",
                book.len()
            )));
        }
        let _w = self.lock()?;
        self.kv.apply(vec![Op::Put(
            key(META, &[META_ADDRESS_BOOK]),
            book.to_vec(),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[test]
    fn the_address_book_is_kept_and_bounded() {
        let store = Store::memory(StoreConfig::default());
        assert_eq!(store.address_book().unwrap(), None);
        store.set_address_book(b"one").unwrap();
        store.set_address_book(b"two").unwrap();
        assert_eq!(store.address_book().unwrap(), Some(b"two".to_vec()));
        let big = vec![0; MAX_ADDRESS_BOOK_BYTES + 1];
        assert!(store.set_address_book(&big).is_err());
        // One written over the bound by other means is not given back.
        store
            .kv
            .apply(vec![Op::Put(key(META, &[META_ADDRESS_BOOK]), big)])
            .unwrap();
        assert_eq!(store.address_book().unwrap(), None);
    }
}
