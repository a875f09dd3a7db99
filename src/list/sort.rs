//! A stable merge sort with a fallible "less than", for `list.sort` with script callbacks.
//!
//! It sorts a permutation of positions, never the items themselves: the first error from the
//! comparison is returned at once and the half-merged permutation is simply discarded, so a
//! failing comparator cannot lose or duplicate an item. Like CPython, only `<` is called, and
//! `reverse` keeps stability by reversing, sorting and reversing again.

/// Runs of this length or shorter are sorted by insertion.
const RUN: usize = 16;

/// The stable sorting permutation of `0..n`: `result[i]` is the position of the `i`-th
/// smallest item, where `less(a, b)` says whether the item at `a` sorts before the item at `b`.
pub(crate) fn sort_indices<E>(
    n: usize,
    reverse: bool,
    mut less: impl FnMut(usize, usize) -> Result<bool, E>,
) -> Result<Vec<usize>, E> {
    let mut order: Vec<usize> = if reverse {
        (0..n).rev().collect()
    } else {
        (0..n).collect()
    };
    let mut buf = vec![0; n];
    merge_sort(&mut order, &mut buf, &mut less)?;
    if reverse {
        order.reverse();
    }
    Ok(order)
}

fn merge_sort<E>(
    v: &mut [usize],
    buf: &mut [usize],
    less: &mut impl FnMut(usize, usize) -> Result<bool, E>,
) -> Result<(), E> {
    let n = v.len();
    if n <= RUN {
        return insertion_sort(v, less);
    }
    let mid = n / 2;
    merge_sort(&mut v[..mid], &mut buf[..mid], less)?;
    merge_sort(&mut v[mid..], &mut buf[mid..], less)?;
    // Already in order: one comparison instead of a merge (sorted input stays O(n)).
    if !less(v[mid], v[mid - 1])? {
        return Ok(());
    }
    buf.copy_from_slice(v);
    let (left, right) = buf.split_at(mid);
    let (mut i, mut j) = (0, 0);
    for slot in v.iter_mut() {
        // Take from the right run only if strictly smaller: equal items keep their order.
        let take_right = i == left.len() || (j < right.len() && less(right[j], left[i])?);
        if take_right {
            *slot = right[j];
            j += 1;
        } else {
            *slot = left[i];
            i += 1;
        }
    }
    Ok(())
}

fn insertion_sort<E>(
    v: &mut [usize],
    less: &mut impl FnMut(usize, usize) -> Result<bool, E>,
) -> Result<(), E> {
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && less(x, v[j - 1])? {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn check(keys: &[(u8, usize)], reverse: bool) {
        let order = sort_indices(keys.len(), reverse, |a, b| {
            Ok::<_, Infallible>(keys[a].0 < keys[b].0)
        })
        .unwrap();
        let got: Vec<_> = order.iter().map(|&i| keys[i]).collect();
        let mut want = keys.to_vec();
        if reverse {
            want.sort_by_key(|k| std::cmp::Reverse(k.0));
        } else {
            want.sort_by_key(|k| k.0);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn stable_both_ways() {
        let mut seed = 7u64;
        for n in [0, 1, 2, 15, 16, 17, 40, 100, 257] {
            let keys: Vec<(u8, usize)> = (0..n)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (((seed >> 33) % 5) as u8, i)
                })
                .collect();
            check(&keys, false);
            check(&keys, true);
        }
    }

    #[test]
    fn first_error_is_returned() {
        let mut calls = 0;
        let r = sort_indices(100, false, |a, b| {
            calls += 1;
            if calls == 50 {
                Err("boom")
            } else {
                Ok(a > b)
            }
        });
        assert_eq!(r, Err("boom"));
        assert_eq!(calls, 50);
    }
}
