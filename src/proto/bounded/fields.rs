//! Per-field limits checked while a field decodes, for
//! `#[serde(deserialize_with = ...)]`: at most `N` elements, byte strings
//! of a signed object's sizes. The element past the limit is the last one
//! decoded; an element that cannot be empty (a signed object is never
//! shorter than its signature) costs its own size on the wire, so short
//! elements cannot multiply what a list holds.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::over;
use crate::proto::SIGNATURE_LEN;

/// The shortest signed object: a signature and a body of one byte.
pub const MIN_SIGNED: usize = SIGNATURE_LEN + 1;

/// A list of at most `N` elements, each decoded by the seed `S`.
struct ListOf<S, const N: usize>(S);

impl<'de, S: DeserializeSeed<'de> + Copy, const N: usize> Visitor<'de> for ListOf<S, N> {
    type Value = Vec<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {N} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if seq.size_hint().is_some_and(|n| n > N) {
            return Err(over("a list longer than its limit", N));
        }
        let mut out = Vec::new();
        while let Some(x) = seq.next_element_seed(self.0)? {
            if out.len() >= N {
                return Err(over("a list longer than its limit", N));
            }
            out.push(x);
        }
        Ok(out)
    }
}

/// A byte string of `MIN..=MAX` bytes, refused as soon as it is too long.
#[derive(Clone, Copy)]
struct SizedBytes<const MIN: usize, const MAX: usize>;

impl<'de, const MIN: usize, const MAX: usize> DeserializeSeed<'de> for SizedBytes<MIN, MAX> {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        // `Vec<u8>` without `serde_bytes` is a sequence of bytes.
        d.deserialize_seq(self)
    }
}

impl<'de, const MIN: usize, const MAX: usize> Visitor<'de> for SizedBytes<MIN, MAX> {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{MIN} to {MAX} bytes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        if seq.size_hint().is_some_and(|n| n > MAX) {
            return Err(over("a byte string longer than its limit", MAX));
        }
        let mut out = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            if out.len() >= MAX {
                return Err(over("a byte string longer than its limit", MAX));
            }
            out.push(b);
        }
        if out.len() < MIN {
            return Err(over("a signed object shorter than its minimum", MIN));
        }
        Ok(out)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        if v.len() > MAX {
            return Err(over("a byte string longer than its limit", MAX));
        }
        if v.len() < MIN {
            return Err(over("a signed object shorter than its minimum", MIN));
        }
        Ok(v.to_vec())
    }
}

/// An element decoded by its own `Deserialize`.
struct Plain<T>(PhantomData<fn() -> T>);

impl<T> Clone for Plain<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Plain<T> {}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Plain<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}

/// `Option<X>` where `X` is decoded by the seed.
struct OptionOf<S>(S);

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for OptionOf<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an option")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// A seed that decodes a list with [`ListOf`].
#[derive(Clone, Copy)]
struct List<S, const N: usize>(S);

impl<'de, S: DeserializeSeed<'de> + Copy, const N: usize> DeserializeSeed<'de> for List<S, N> {
    type Value = Vec<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(ListOf::<S, N>(self.0))
    }
}

/// At most `N` elements.
pub fn at_most<'de, const N: usize, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    List::<_, N>(Plain::<T>(PhantomData)).deserialize(d)
}

/// `None`, or at most `N` elements.
pub fn opt_at_most<'de, const N: usize, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    d.deserialize_option(OptionOf(List::<_, N>(Plain::<T>(PhantomData))))
}

/// One signed object of at most `MAX` bytes.
pub fn signed<'de, const MAX: usize, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    SizedBytes::<MIN_SIGNED, MAX>.deserialize(d)
}

/// At most `N` signed objects of at most `MAX` bytes each.
pub fn signed_list<'de, const N: usize, const MAX: usize, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Vec<u8>>, D::Error> {
    List::<_, N>(SizedBytes::<MIN_SIGNED, MAX>).deserialize(d)
}

/// At most `MAX` bytes.
pub fn bytes<'de, const MAX: usize, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    SizedBytes::<0, MAX>.deserialize(d)
}

/// `None`, or at most `N` byte strings of at most `MAX` bytes each.
pub fn opt_bytes_list<'de, const N: usize, const MAX: usize, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Vec<u8>>>, D::Error> {
    d.deserialize_option(OptionOf(List::<_, N>(SizedBytes::<0, MAX>)))
}

/// Two byte strings.
pub type BytesPair = (Vec<u8>, Vec<u8>);

/// `None`, or a pair of byte strings of at most `A` and `B` bytes.
pub fn opt_bytes_pair<'de, const A: usize, const B: usize, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BytesPair>, D::Error> {
    d.deserialize_option(OptionOf(Pair::<A, B>))
}

#[derive(Clone, Copy)]
struct Pair<const A: usize, const B: usize>;

impl<'de, const A: usize, const B: usize> DeserializeSeed<'de> for Pair<A, B> {
    type Value = (Vec<u8>, Vec<u8>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de, const A: usize, const B: usize> Visitor<'de> for Pair<A, B> {
    type Value = (Vec<u8>, Vec<u8>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a pair of byte strings")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let a = seq
            .next_element_seed(SizedBytes::<0, A>)?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let b = seq
            .next_element_seed(SizedBytes::<0, B>)?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((a, b))
    }
}
