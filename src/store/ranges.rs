//! Sequence numbers as inclusive ranges: what is held, and what is not.

/// Merges sorted sequence numbers into inclusive ranges.
pub fn to_ranges(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, end)) if s == end.saturating_add(1) => *end = s,
            Some((_, end)) if s <= *end => {}
            _ => out.push((s, s)),
        }
    }
    out
}

/// The numbers in `1..=upto` that no range covers.
pub fn gaps(ranges: &[(u64, u64)], upto: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut next = 1u64;
    for &(a, b) in ranges {
        if a > upto {
            break;
        }
        if a > next {
            out.push((next, a - 1));
        }
        next = next.max(b.saturating_add(1));
    }
    if next <= upto {
        out.push((next, upto));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_gaps() {
        assert_eq!(to_ranges([1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(
            gaps(&[(1, 3), (5, 5), (7, 8)], 10),
            vec![(4, 4), (6, 6), (9, 10)]
        );
        assert_eq!(gaps(&[], 3), vec![(1, 3)]);
        assert_eq!(gaps(&[(2, 9)], 3), vec![(1, 1)]);
        assert_eq!(gaps(&[(1, 3)], 0), vec![]);
    }
}
