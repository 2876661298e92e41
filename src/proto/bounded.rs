//! Decoding with a memory budget, so that no input can make a decoder hold
//! much more than the input itself.
//!
//! A length limit on the input is not enough: postcard spends one byte on
//! an empty byte string, which costs 24 bytes in a `Vec<Vec<u8>>`, and a
//! decoder that checks element counts only after decoding has already paid
//! for every element. So every decode from a peer or a file goes through
//! [`Meter`], a serde adapter that wraps any deserializer (postcard,
//! serde_json) and charges a budget as it goes: each element of a sequence
//! or map the size of its in-memory value, each sequence a fixed overhead,
//! each string or byte buffer its length. The budget is
//! `min(ceiling, FACTOR × input length + SLACK)`; decoding stops with
//! [`BoundedError::OverLimits`] the moment it is spent.
//!
//! Fields with a protocol limit (element counts, sizes of signed objects)
//! are checked while they decode too, with the helpers of
//! [`fields`](self::fields) in `#[serde(deserialize_with = ...)]`.
//!
//! The adapter hides the input's size hints, so a container never reserves
//! room for elements that were claimed but not yet decoded: what a
//! container holds is at most twice what was charged for it (growth by
//! doubling).

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use thiserror::Error;

pub mod fields;

/// The budget grows by this many bytes of memory per byte of input.
pub const FACTOR: usize = 8;
/// Bytes of budget every decode has, whatever its input's length.
pub const SLACK: usize = 64 * 1024;
/// What a sequence or map costs beyond its elements: a small allocation
/// and its header, even when empty.
pub const SEQ_COST: usize = 64;

/// Why a bounded decode failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BoundedError {
    /// The input is over a limit: its memory budget, a field's element
    /// count or a field's size. No honest encoder produces it.
    #[error("{what} (limit {limit})")]
    OverLimits {
        /// What was over.
        what: &'static str,
        /// The limit it broke.
        limit: usize,
    },
    /// The input ended early.
    #[error("the input ended early")]
    Truncated,
    /// The input is not a valid encoding.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Bytes follow a complete value.
    #[error("{0} bytes after the end")]
    TrailingBytes(usize),
}

impl BoundedError {
    /// Whether the input broke a limit (rather than being merely garbled).
    pub fn is_over_limits(&self) -> bool {
        matches!(self, Self::OverLimits { .. })
    }
}

/// The budget of a decode of `wire` input bytes, at most `ceiling`.
pub fn budget(wire: usize, ceiling: usize) -> usize {
    wire.saturating_mul(FACTOR)
        .saturating_add(SLACK)
        .min(ceiling)
}

/// The ceiling for input of at most `max_wire` bytes: its budget there.
pub const fn ceiling(max_wire: usize) -> usize {
    max_wire * FACTOR + SLACK
}

thread_local! {
    /// The limit the current decode broke, if any: serde's error types
    /// carry only text, and a decode over its limits must be told apart
    /// from a garbled one without reading that text.
    static BROKEN: Cell<Option<(&'static str, usize)>> = const { Cell::new(None) };
}

/// Records that a limit was broken and gives the error that stops the
/// decode; the entry points turn it into [`BoundedError::OverLimits`].
pub(crate) fn over<E: de::Error>(what: &'static str, limit: usize) -> E {
    BROKEN.with(|b| b.set(Some((what, limit))));
    E::custom(format_args!("{what} (limit {limit})"))
}

fn take_broken() -> Option<BoundedError> {
    BROKEN
        .with(|b| b.take())
        .map(|(what, limit)| BoundedError::OverLimits { what, limit })
}

/// What a decode may still spend.
#[derive(Debug)]
pub struct Meter {
    left: Cell<usize>,
    budget: usize,
}

impl Meter {
    /// A meter with `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            left: Cell::new(budget),
            budget,
        }
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.budget - self.left.get()
    }

    fn charge<E: de::Error>(&self, n: usize) -> Result<(), E> {
        match self.left.get().checked_sub(n) {
            Some(l) => {
                self.left.set(l);
                Ok(())
            }
            None => Err(over("the decoded size over its budget", self.budget)),
        }
    }

    /// `inner`, charging this meter.
    pub fn wrap<'de, D: Deserializer<'de>>(&self, inner: D) -> Metered<'_, D> {
        Metered { inner, meter: self }
    }
}

/// Decodes postcard `bytes` within `budget(bytes.len(), ceiling)`; returns
/// the value and the bytes after it.
pub fn postcard_take<T: DeserializeOwned>(
    bytes: &[u8],
    ceiling: usize,
) -> Result<(T, &[u8]), BoundedError> {
    let meter = Meter::new(budget(bytes.len(), ceiling));
    postcard_take_metered(bytes, &meter)
}

/// [`postcard_take`] with a meter of the caller's (to read what it used).
pub fn postcard_take_metered<'a, T: DeserializeOwned>(
    bytes: &'a [u8],
    meter: &Meter,
) -> Result<(T, &'a [u8]), BoundedError> {
    let _ = take_broken();
    let mut de = postcard::Deserializer::from_bytes(bytes);
    let value = T::deserialize(meter.wrap(&mut de));
    if let Some(broken) = take_broken() {
        return Err(broken);
    }
    match value {
        Ok(v) => {
            let rest = de
                .finalize()
                .map_err(|e| BoundedError::Malformed(e.to_string()))?;
            Ok((v, rest))
        }
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(BoundedError::Truncated),
        Err(e) => Err(BoundedError::Malformed(e.to_string())),
    }
}

/// Decodes postcard `bytes` whole (trailing bytes refused) within
/// `budget(bytes.len(), ceiling)`.
pub fn postcard<T: DeserializeOwned>(bytes: &[u8], ceiling: usize) -> Result<T, BoundedError> {
    match postcard_take(bytes, ceiling)? {
        (v, []) => Ok(v),
        (_, rest) => Err(BoundedError::TrailingBytes(rest.len())),
    }
}

/// Decodes JSON `bytes` whole within `budget(bytes.len(), ceiling)`.
pub fn json<T: DeserializeOwned>(bytes: &[u8], ceiling: usize) -> Result<T, BoundedError> {
    let _ = take_broken();
    let meter = Meter::new(budget(bytes.len(), ceiling));
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(meter.wrap(&mut de)).and_then(|v| de.end().map(|()| v));
    if let Some(broken) = take_broken() {
        return Err(broken);
    }
    match value {
        Ok(v) => Ok(v),
        Err(e) if e.is_eof() => Err(BoundedError::Truncated),
        Err(e) => Err(BoundedError::Malformed(e.to_string())),
    }
}

/// A deserializer that charges its [`Meter`] for what it builds.
pub struct Metered<'m, D> {
    inner: D,
    meter: &'m Meter,
}

/// How a visited sequence or map is paid for.
#[derive(Clone, Copy)]
enum Layout {
    /// Elements on the heap (a `Vec`, a map): each is charged.
    Heap,
    /// Elements inline in the value that holds them (a tuple, an array,
    /// a struct's fields): already paid for by its size.
    Inline,
}

struct Vis<'m, V> {
    inner: V,
    meter: &'m Meter,
    layout: Layout,
}

macro_rules! forward {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.inner.$method(Vis { inner: visitor, meter: self.meter, layout: Layout::Heap })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Metered<'_, D> {
    type Error = D::Error;

    forward!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = Vis {
            inner: visitor,
            meter: self.meter,
            layout: Layout::Inline,
        };
        self.inner.deserialize_unit_struct(name, v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = Vis {
            inner: visitor,
            meter: self.meter,
            layout: Layout::Inline,
        };
        self.inner.deserialize_newtype_struct(name, v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = Vis {
            inner: visitor,
            meter: self.meter,
            layout: Layout::Inline,
        };
        self.inner.deserialize_tuple(len, v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = Vis {
            inner: visitor,
            meter: self.meter,
            layout: Layout::Inline,
        };
        self.inner.deserialize_tuple_struct(name, len, v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = Vis {
            inner: visitor,
            meter: self.meter,
            layout: Layout::Inline,
        };
        self.inner.deserialize_struct(name, fields, v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = Vis {
            inner: visitor,
            meter: self.meter,
            layout: Layout::Inline,
        };
        self.inner.deserialize_enum(name, variants, v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        // What is skipped is never held.
        self.inner.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! visit_plain {
    ($($method:ident: $t:ty),*) => {$(
        fn $method<E: de::Error>(self, v: $t) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit_plain!(
        visit_bool: bool,
        visit_i8: i8,
        visit_i16: i16,
        visit_i32: i32,
        visit_i64: i64,
        visit_i128: i128,
        visit_u8: u8,
        visit_u16: u16,
        visit_u32: u32,
        visit_u64: u64,
        visit_u128: u128,
        visit_f32: f32,
        visit_f64: f64,
        visit_char: char
    );

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_string(v)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_bytes(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_borrowed_bytes(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        self.meter.charge(v.len())?;
        self.inner.visit_byte_buf(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(self.meter.wrap(d))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(self.meter.wrap(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if let Layout::Heap = self.layout {
            self.meter.charge(SEQ_COST)?;
        }
        self.inner.visit_seq(Access {
            inner: seq,
            meter: self.meter,
            layout: self.layout,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        if let Layout::Heap = self.layout {
            self.meter.charge(SEQ_COST)?;
        }
        self.inner.visit_map(Access {
            inner: map,
            meter: self.meter,
            layout: self.layout,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(Access {
            inner: data,
            meter: self.meter,
            layout: Layout::Inline,
        })
    }
}

/// A sequence, map, enum or variant whose parts are charged.
struct Access<'m, A> {
    inner: A,
    meter: &'m Meter,
    layout: Layout,
}

impl<A> Access<'_, A> {
    fn charge_one<T, E: de::Error>(&self) -> Result<(), E> {
        match self.layout {
            Layout::Heap => self.meter.charge(size_of::<T>().max(1)),
            Layout::Inline => Ok(()),
        }
    }
}

/// A seed whose deserializer charges the meter.
struct Seed<'m, S> {
    inner: S,
    meter: &'m Meter,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(self.meter.wrap(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let seed = Seed {
            inner: seed,
            meter: self.meter,
        };
        let next = self.inner.next_element_seed(seed)?;
        if next.is_some() {
            self.charge_one::<T::Value, _>()?;
        }
        Ok(next)
    }

    // No size hint: a claimed length reserves nothing before it is paid.
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let seed = Seed {
            inner: seed,
            meter: self.meter,
        };
        let next = self.inner.next_key_seed(seed)?;
        if next.is_some() {
            self.charge_one::<K::Value, _>()?;
        }
        Ok(next)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let seed = Seed {
            inner: seed,
            meter: self.meter,
        };
        let value = self.inner.next_value_seed(seed)?;
        self.charge_one::<V::Value, _>()?;
        Ok(value)
    }
}

impl<'de, 'm, A: EnumAccess<'de>> EnumAccess<'de> for Access<'m, A> {
    type Error = A::Error;
    type Variant = Access<'m, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let seed = Seed {
            inner: seed,
            meter: self.meter,
        };
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            Access {
                inner: variant,
                meter: self.meter,
                layout: Layout::Inline,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            meter: self.meter,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = Vis {
            inner: visitor,
            meter: self.meter,
            layout: Layout::Inline,
        };
        self.inner.tuple_variant(len, v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let v = Vis {
            inner: visitor,
            meter: self.meter,
            layout: Layout::Inline,
        };
        self.inner.struct_variant(fields, v)
    }
}

#[cfg(test)]
mod tests;
