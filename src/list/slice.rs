//! Python slices: `list[start:stop:step]`, with CPython's index arithmetic.

use crate::Error;

/// A Python slice object: `start:stop:step`, each part optional (`None` is Python's default).
///
/// ```
/// use gilfree::{LockedList, Slice};
///
/// let l: LockedList<i32> = (0..10).collect();
/// assert_eq!(l.get_slice(Slice::new(None, None, Some(-3))).unwrap(), vec![9, 6, 3, 0]);
/// assert_eq!(l.get_slice(Slice::range(-3, isize::MAX)).unwrap(), vec![7, 8, 9]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Slice {
    /// First index (Python's default: the start, or the end for a negative step).
    pub start: Option<isize>,
    /// One past the last index (Python's default: the end, or before the start for a
    /// negative step).
    pub stop: Option<isize>,
    /// Step (default 1); zero is [`Error::ZeroStep`].
    pub step: Option<isize>,
}

/// A slice resolved against a length: CPython's `slice.indices(len)` plus the slice's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SliceIndices {
    /// First index (may be `-1` or `len` for an empty slice).
    pub start: isize,
    /// Stop index, exclusive in the direction of `step`.
    pub stop: isize,
    /// Step, never zero.
    pub step: isize,
    /// Number of indices the slice selects.
    pub len: usize,
}

impl Slice {
    /// `start:stop:step`.
    pub fn new(start: Option<isize>, stop: Option<isize>, step: Option<isize>) -> Slice {
        Slice { start, stop, step }
    }

    /// `:` (the whole list).
    pub fn full() -> Slice {
        Slice::default()
    }

    /// `start:stop` (step 1).
    pub fn range(start: isize, stop: isize) -> Slice {
        Slice::new(Some(start), Some(stop), None)
    }

    /// `start:stop:step`, every part given.
    pub fn with_step(start: isize, stop: isize, step: isize) -> Slice {
        Slice::new(Some(start), Some(stop), Some(step))
    }

    /// Resolves the slice against a sequence of `len` items, exactly as CPython's
    /// `PySlice_Unpack` + `PySlice_AdjustIndices` do.
    pub fn indices<E>(&self, len: usize) -> Result<SliceIndices, Error<E>> {
        let step = match self.step {
            None => 1,
            Some(0) => return Err(Error::ZeroStep),
            // CPython clamps so that `-step` cannot overflow.
            Some(s) => s.max(-isize::MAX),
        };
        let len = len.min(isize::MAX as usize) as isize;
        let (def_start, def_stop) = if step < 0 {
            (isize::MAX, isize::MIN)
        } else {
            (0, isize::MAX)
        };
        let adjust = |i: isize| -> isize {
            if i < 0 {
                let j = i.saturating_add(len);
                if j < 0 {
                    if step < 0 {
                        -1
                    } else {
                        0
                    }
                } else {
                    j
                }
            } else if i >= len {
                if step < 0 {
                    len - 1
                } else {
                    len
                }
            } else {
                i
            }
        };
        let start = adjust(self.start.unwrap_or(def_start));
        let stop = adjust(self.stop.unwrap_or(def_stop));
        let count = if step < 0 {
            if stop < start {
                ((start - stop - 1) / (-step)) as usize + 1
            } else {
                0
            }
        } else if start < stop {
            ((stop - start - 1) / step) as usize + 1
        } else {
            0
        };
        Ok(SliceIndices {
            start,
            stop,
            step,
            len: count,
        })
    }
}

impl SliceIndices {
    /// The selected indices, in slice order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = usize> + ExactSizeIterator {
        let (start, step) = (self.start, self.step);
        // Every selected index lies in `0..len`, so these casts are exact.
        (0..self.len).map(move |k| (start + k as isize * step) as usize)
    }

    /// The same indices as an ascending `(first, step)` pair (for deletion).
    pub(crate) fn ascending(&self) -> (usize, usize) {
        if self.len == 0 {
            return (0, 1);
        }
        if self.step > 0 {
            (self.start as usize, self.step as usize)
        } else {
            let last = self.start + (self.len as isize - 1) * self.step;
            (last as usize, self.step.unsigned_abs())
        }
    }

    /// For a step-1 slice: the half-open range it replaces (CPython's `list_ass_slice`
    /// clamps `stop` up to `start`).
    pub(crate) fn contiguous(&self) -> (usize, usize) {
        let start = self.start.max(0) as usize;
        let stop = (self.stop.max(self.start)).max(0) as usize;
        (start, stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn idx(s: Slice, len: usize) -> (isize, isize, isize, usize) {
        let i = s.indices::<Infallible>(len).unwrap();
        (i.start, i.stop, i.step, i.len)
    }

    #[test]
    fn matches_cpython() {
        // Expected values from CPython's `slice(...).indices(len)` and `len(range(...))`.
        assert_eq!(idx(Slice::full(), 5), (0, 5, 1, 5));
        assert_eq!(idx(Slice::new(None, None, Some(-1)), 5), (4, -1, -1, 5));
        assert_eq!(idx(Slice::with_step(-100, 100, 2), 5), (0, 5, 2, 3));
        assert_eq!(idx(Slice::with_step(100, -100, -2), 5), (4, -1, -2, 3));
        assert_eq!(idx(Slice::range(3, 1), 5), (3, 1, 1, 0));
        assert_eq!(
            idx(Slice::new(None, None, Some(isize::MIN)), 5),
            (4, -1, -isize::MAX, 1)
        );
        assert_eq!(idx(Slice::full(), 0), (0, 0, 1, 0));
        assert_eq!(idx(Slice::new(None, None, Some(-1)), 0), (-1, -1, -1, 0));
        assert_eq!(
            Slice::new(None, None, Some(0)).indices::<Infallible>(3),
            Err(Error::ZeroStep)
        );
        let i = Slice::with_step(1, 8, 3).indices::<Infallible>(10).unwrap();
        assert_eq!(i.iter().collect::<Vec<_>>(), vec![1, 4, 7]);
        let i = Slice::new(Some(8), None, Some(-3))
            .indices::<Infallible>(10)
            .unwrap();
        assert_eq!(i.iter().collect::<Vec<_>>(), vec![8, 5, 2]);
        assert_eq!(i.ascending(), (2, 3));
    }
}
