//! Sequence ranges: inclusive `(first, last)` pairs of a publisher's
//! sequence numbers, sorted and disjoint. Stores keep what they hold as
//! ranges; catch-up compares and subtracts them.

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

/// The parts of `theirs` that `known` does not cover, up to `upto`
/// (sequence numbers start at 1).
pub fn subtract(theirs: &[(u64, u64)], known: &[(u64, u64)], upto: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut k = 0;
    for &(a, b) in theirs {
        let b = b.min(upto);
        let mut start = a.max(1);
        while start <= b {
            while k < known.len() && known[k].1 < start {
                k += 1;
            }
            match known.get(k) {
                Some(&(ka, kb)) if ka <= start => {
                    if kb >= b {
                        break;
                    }
                    start = kb + 1;
                }
                Some(&(ka, _)) if ka <= b => {
                    out.push((start, ka - 1));
                    start = ka;
                }
                _ => {
                    out.push((start, b));
                    break;
                }
            }
        }
    }
    out
}

/// How many numbers the ranges cover.
pub fn count(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(a, b)| b - a + 1).sum()
}

/// Whether `seq` falls in one of the (sorted) ranges.
pub fn covers(ranges: &[(u64, u64)], seq: u64) -> bool {
    let i = ranges.partition_point(|&(_, b)| b < seq);
    ranges.get(i).is_some_and(|&(a, _)| a <= seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_leaves_what_is_not_known() {
        assert_eq!(subtract(&[(1, 10)], &[], 100), vec![(1, 10)]);
        assert_eq!(subtract(&[(1, 10)], &[(1, 10)], 100), vec![]);
        assert_eq!(
            subtract(&[(1, 10)], &[(3, 4), (8, 20)], 100),
            vec![(1, 2), (5, 7)]
        );
        assert_eq!(
            subtract(&[(1, 10), (20, 30)], &[(5, 25)], 100),
            vec![(1, 4), (26, 30)]
        );
        assert_eq!(subtract(&[(1, 10)], &[], 6), vec![(1, 6)]);
        assert_eq!(
            subtract(&[(0, u64::MAX)], &[(1, u64::MAX)], u64::MAX),
            vec![]
        );
        assert_eq!(subtract(&[(5, 9)], &[(1, 2)], 0), vec![]);
    }

    #[test]
    fn ranges_merge_count_and_cover() {
        let r = to_ranges([1, 2, 3, 5, 5, 7, 8]);
        assert_eq!(r, vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(count(&r), 6);
        assert!(covers(&r, 1) && covers(&r, 5) && covers(&r, 8));
        assert!(!covers(&r, 4) && !covers(&r, 6) && !covers(&r, 9) && !covers(&r, 0));
        assert_eq!(gaps(&r, 10), vec![(4, 4), (6, 6), (9, 10)]);
    }
}
