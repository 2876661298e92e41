use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Loose {
    items: Vec<Vec<u8>>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Strict {
    #[serde(deserialize_with = "fields::signed_list::<4, 128, _>")]
    items: Vec<Vec<u8>>,
    #[serde(deserialize_with = "fields::at_most::<3, _, _>")]
    ranges: Vec<(u64, u64)>,
}

/// `n` empty byte strings: one byte each on the wire, 24 in a `Vec`.
fn empties(n: usize) -> Vec<u8> {
    postcard::to_allocvec(&Loose {
        items: vec![Vec::new(); n],
    })
    .unwrap()
}

#[test]
fn empty_elements_spend_the_budget_and_are_refused() {
    let bytes = empties(1_000_000);
    assert!(bytes.len() < 1_000_010);
    // Unbounded, it decodes to 24 MB from 1 MB.
    let loose: Loose = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(loose.items.len(), 1_000_000);
    let meter = Meter::new(budget(bytes.len(), usize::MAX));
    let err = postcard_take_metered::<Loose>(&bytes, &meter).unwrap_err();
    assert!(err.is_over_limits(), "{err}");
    assert!(meter.used() <= budget(bytes.len(), usize::MAX));
}

#[test]
fn what_an_honest_list_costs_is_charged_and_passes() {
    let value = Loose {
        items: vec![vec![7u8; 1000]; 100],
    };
    let bytes = postcard::to_allocvec(&value).unwrap();
    let meter = Meter::new(budget(bytes.len(), usize::MAX));
    let (back, rest) = postcard_take_metered::<Loose>(&bytes, &meter).unwrap();
    assert!(rest.is_empty());
    assert_eq!(back, value);
    // Each byte, each element's Vec and each list's overhead.
    assert_eq!(meter.used(), 100 * 1000 + 100 * 24 + 101 * SEQ_COST);
}

#[test]
fn the_ceiling_caps_the_budget() {
    let value = Loose {
        items: vec![vec![1u8; 10_000]],
    };
    let bytes = postcard::to_allocvec(&value).unwrap();
    assert!(postcard::<Loose>(&bytes, 20_000).is_ok());
    let err = postcard::<Loose>(&bytes, 5_000).unwrap_err();
    assert!(err.is_over_limits(), "{err}");
}

#[test]
fn field_limits_refuse_while_decoding() {
    let ok = Strict {
        items: vec![vec![1; 100]; 4],
        ranges: vec![(1, 2); 3],
    };
    let bytes = postcard::to_allocvec(&ok).unwrap();
    assert_eq!(postcard::<Strict>(&bytes, usize::MAX).unwrap(), ok);

    for bad in [
        Strict {
            items: vec![vec![1; 100]; 5],
            ranges: vec![],
        },
        Strict {
            items: vec![vec![1; 129]],
            ranges: vec![],
        },
        Strict {
            items: vec![],
            ranges: vec![(1, 2); 4],
        },
    ] {
        let bytes = postcard::to_allocvec(&bad).unwrap();
        let err = postcard::<Strict>(&bytes, usize::MAX).unwrap_err();
        assert!(err.is_over_limits(), "{err}");
        // Plain postcard refuses them too, at the same point.
        assert!(::postcard::from_bytes::<Strict>(&bytes).is_err());
    }

    // Too short to be a signed object: no honest encoder sends it.
    let short = Strict {
        items: vec![vec![1; 10]],
        ranges: vec![],
    };
    let bytes = postcard::to_allocvec(&short).unwrap();
    let err = postcard::<Strict>(&bytes, usize::MAX).unwrap_err();
    assert!(err.is_over_limits(), "{err}");
}

#[test]
fn garbled_truncated_and_trailing_input_are_told_apart() {
    let bytes = postcard::to_allocvec(&Loose {
        items: vec![vec![1, 2, 3]],
    })
    .unwrap();
    assert_eq!(
        postcard::<Loose>(&bytes[..bytes.len() - 1], usize::MAX),
        Err(BoundedError::Truncated)
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        postcard::<Loose>(&longer, usize::MAX),
        Err(BoundedError::TrailingBytes(1))
    );
    // An earlier refusal does not leak into the next decode.
    let _ = postcard::<Loose>(&empties(100_000), 1000);
    assert!(postcard::<Loose>(&bytes, usize::MAX).is_ok());
}

#[test]
fn json_is_metered_too() {
    #[derive(Debug, Deserialize)]
    struct Req {
        #[allow(dead_code)]
        path: String,
    }
    assert!(json::<Req>(br#"{"path":"/tmp/a","other":[1,2,3]}"#, 1024).is_ok());
    let long = format!(r#"{{"path":"{}"}}"#, "a".repeat(4000));
    let err = json::<Req>(long.as_bytes(), 1024).unwrap_err();
    assert!(err.is_over_limits(), "{err}");
    // A list of empty lists: 3 bytes each in JSON, far more as values.
    let nested = format!("[{}[]]", "[],".repeat(100_000));
    let err = json::<serde_json::Value>(nested.as_bytes(), usize::MAX).unwrap_err();
    assert!(err.is_over_limits(), "{err}");
}
