//! The control bytes both dict stores probe: which bucket a key is in.
//!
//! A dict table keeps its entries in *buckets* (key and value inline, probed by hash, like
//! hashbrown) and their insertion order in a separate *order* array of bucket numbers. This
//! module is the part that finds buckets: one control byte per bucket, eight to a word (a
//! *group*):
//!
//! - `0x00` empty: never used since the table was built (ends a chain);
//! - `0x01` deleted: its entry was removed;
//! - `0x80 | h7`: in use, `h7` being seven bits of the key's 32-bit hash *tag* ([`tag32`]).
//!
//! A lookup loads the control word of its group and finds, with no branch per bucket, the
//! buckets whose byte matches ([`Hits`]: one SSE2 compare on x86-64, word-wide SWAR arithmetic
//! elsewhere, as hashbrown's portable groups do); then it compares their keys. The control bytes are one byte a bucket, so they
//! stay in cache for tables that do not: a lookup of a large table misses once, on the bucket.
//!
//! A key's chain starts at a group chosen from its tag by multiply-shift range reduction (any
//! number of groups, so a table is sized to what it holds, not to a power of two) and visits
//! whole groups in turn; a group with an empty bucket ends the chain (an insert would have
//! stopped there). Inserts take the first empty bucket of their chain, or, in a store without
//! lock-free readers, the first deleted one. A removal marks its bucket deleted; a store
//! without lock-free readers may empty it outright when its group has an empty bucket already
//! (no chain ever passed such a group, since a group never regains an empty bucket once full).
//!
//! The start group depends on the tag only, and the stores keep each bucket's tag, so a table
//! rebuilds without the keys' hashes (and without calling a script `__hash__` again).
//!
//! Multiply-shift takes the start group from the tag's high bits, and the control byte is its
//! low seven: right for a well-mixed hash (the default hasher's), but an interpreter's hash
//! may be structured (Python's `hash(i)` is `i`), and keys whose tags differ only in their
//! low bits would then share one start group and pile up into one ever longer chain:
//! quadratic time in the number of keys. So an insert that walks more than [`FAR`] groups
//! has its table rebuilt *spread*: a spread table probes with `tag * SPREAD` (Fibonacci
//! hashing, a bijection that carries every bit of the tag into the high ones, so the start
//! groups scatter; the control byte, the product's low seven bits, still depends on the
//! tag's low seven bits only, as before). The stored tags stay as they are; the mode belongs
//! to the table, is copied into its [`CtrlView`], and is kept by every later rebuild of the
//! dict. Well-mixed tags at a load of at most 3/4 make far shorter chains (linear probing
//! does cluster: the longest measured was 55 groups among 16 million keys, 76 in a dict of
//! 65,536 positions, hence a limit of 512), so such tables keep the plain mode and never pay
//! the multiplication, only one predictable branch (`CtrlView::probe_tag`). Keys whose tags
//! are equal (a constant hash; Python ints `k * (2^32 + 1)`, whose two halves fold to 0) stay
//! in one chain in either mode.
//!
//! A table of `n` order positions has at least `4n/3` buckets (`buckets_for`: load at most
//! 3/4), and each position takes a bucket at most once, so at least a quarter of the buckets
//! stay empty and every probe chain ends. The bytes
//! are atomic words so that the GIL-free store's readers probe without a lock: a writer fills
//! the bucket, then stores the control word with Release; a reader loads the control word with
//! Acquire, then reads the bucket. The locked store uses the same type with its lock held.

use crate::sync::{AtomicU64, Ordering};

/// Buckets per group (one control word).
pub(crate) const GROUP: usize = 8;

/// The longest chain, in groups, an insert walks before its table is rebuilt spread (see the
/// module docs).
pub(crate) const FAR: usize = 512;

/// A spread table's probe tag multiplier: 2^32 divided by the golden ratio, odd.
const SPREAD: u32 = 0x9E37_79B9;

/// The 32-bit tag a key with this hash carries.
#[inline(always)]
pub(crate) fn tag32(hash: u64) -> u32 {
    (hash ^ (hash >> 32)) as u32
}

/// The control byte of a bucket in use with this tag (the low seven bits: the group comes from
/// the high ones).
#[inline(always)]
fn ctrl_byte(tag: u32) -> u64 {
    0x80 | u64::from(tag & 0x7F)
}

const DELETED: u64 = 0x01;
/// `0x01` in each byte.
#[cfg(any(
    all(test, not(gilfree_loom)),
    not(all(target_arch = "x86_64", target_feature = "sse2"))
))]
const LO: u64 = 0x0101_0101_0101_0101;
/// `0x80` in each byte.
#[cfg(any(
    all(test, not(gilfree_loom)),
    not(all(target_arch = "x86_64", target_feature = "sse2"))
))]
const HI: u64 = 0x8080_8080_8080_8080;

/// The bytes of `x` that are zero, as their top bits (the lowest one is exact; higher ones may
/// be false positives next to a true one, which callers tolerate or filter).
#[cfg(any(
    all(test, not(gilfree_loom)),
    not(all(target_arch = "x86_64", target_feature = "sse2"))
))]
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// Buckets of one group that a test picked out, as a bit set: the lowest is exact, and every
/// bucket that passes the test is in the set (the portable form may add false positives above
/// a true one, which every caller tolerates: it checks each candidate's key, or only uses the
/// lowest).
///
/// On x86-64 a group is tested with SSE2 (one compare and one mask extraction for the eight
/// bytes, and the set is exact: bit `i` is bucket `i`); elsewhere with word-wide SWAR
/// arithmetic (bit `8i + 7` is bucket `i`), as hashbrown's portable groups do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hits(u64);

impl Hits {
    /// Bits of the set per bucket.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    const STRIDE: u32 = 1;
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    const STRIDE: u32 = 8;

    #[inline(always)]
    fn any(self) -> bool {
        self.0 != 0
    }

    /// The lowest bucket of the set (within its group); [`GROUP`] or more if it is empty.
    #[inline(always)]
    fn lowest(self) -> usize {
        (self.0.trailing_zeros() / Self::STRIDE) as usize
    }

    /// The set without its lowest bucket.
    #[inline(always)]
    fn rest(self) -> Hits {
        Hits(self.0 & self.0.wrapping_sub(1))
    }
}

/// The buckets of the group `ctrl` whose control byte is `byte`.
#[inline(always)]
fn matching(ctrl: u64, byte: u64) -> Hits {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return Hits(matching_sse2(ctrl, byte));
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    return Hits(matching_swar(ctrl, byte));
}

/// [`matching`]'s set on x86-64: bit `i` for bucket `i`, exact.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn matching_sse2(ctrl: u64, byte: u64) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_cvtsi64_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is enabled for this target (the `cfg` above); the intrinsics compute on
    // registers only. The upper eight lanes hold zeros: masked off, so a test for zero bytes
    // sees only the group's own eight.
    let mask = unsafe {
        _mm_movemask_epi8(_mm_cmpeq_epi8(
            _mm_cvtsi64_si128(ctrl as i64),
            _mm_set1_epi8(byte as u8 as i8),
        ))
    };
    u64::from(mask as u32 & 0xFF)
}

/// [`matching`]'s set elsewhere: bit `8i + 7` for bucket `i`, exact for the lowest.
#[cfg(any(
    all(test, not(gilfree_loom)),
    not(all(target_arch = "x86_64", target_feature = "sse2"))
))]
#[inline(always)]
fn matching_swar(ctrl: u64, byte: u64) -> u64 {
    zero_bytes(ctrl ^ (LO * byte))
}

/// The empty buckets of the group `ctrl`.
#[inline(always)]
fn empties(ctrl: u64) -> Hits {
    matching(ctrl, 0)
}

/// The buckets in use of the group `ctrl` (top bit set), exactly.
#[inline(always)]
fn fulls(ctrl: u64) -> Hits {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return Hits(fulls_sse2(ctrl));
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    return Hits(ctrl & HI);
}

/// [`fulls`]'s set on x86-64: bit `i` for bucket `i`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn fulls_sse2(ctrl: u64) -> u64 {
    use std::arch::x86_64::{_mm_cvtsi64_si128, _mm_movemask_epi8};
    // SAFETY: SSE2 is enabled for this target (the `cfg` above); the intrinsics compute on
    // registers only. The upper eight lanes hold zeros, whose top bits are clear.
    let mask = unsafe { _mm_movemask_epi8(_mm_cvtsi64_si128(ctrl as i64)) };
    u64::from(mask as u32 & 0xFF)
}

/// How far ahead a rebuild asks for the memory it will visit at random: a walk in insertion
/// order (the locked store's rebuild, the GIL-free store's first pass) asks for the fresh
/// table's control word of an entry this many order positions ahead, and for the old bucket
/// and tag twice as far ahead, so the tag is there by then; a walk in bucket order (the
/// GIL-free store's second pass) asks for the fresh control word this many buckets ahead.
pub(crate) const REBUILD_PREFETCH: usize = 8;

/// Largest number of order positions of one table (bucket numbers fit in a `u32`).
pub(crate) const MAX_POSITIONS: usize = 1 << 31;

/// The fewest order positions a table allocates.
pub(crate) const MIN_POSITIONS: usize = 8;

/// The order positions of a table that should hold `n` entries.
#[inline]
pub(crate) fn positions_for(n: usize) -> usize {
    let cap = n.max(MIN_POSITIONS);
    assert!(
        cap <= MAX_POSITIONS,
        "a gilfree dict holds at most 2^31 entries"
    );
    cap
}

/// `Ok` if a table can hold `live + additional` entries ([`MAX_POSITIONS`] at most).
pub(crate) fn room_for(live: usize, additional: usize) -> Result<(), crate::Error> {
    match live.checked_add(additional) {
        Some(need) if need <= MAX_POSITIONS => Ok(()),
        _ => Err(crate::Error::TooLarge),
    }
}

/// The order positions of a table rebuilt from one holding `live` entries, with room for
/// `extra` more: twice the live entries (or more for `extra`), as a vector grows, so the next
/// rebuild is at least `live` insertions away and rebuilds cost O(1) amortized.
///
/// A *churning* table (removed positions are at least half its live entries: inserts and
/// removes at a steady size) gets room for one and a half times its live entries instead.
/// Each insert then pays two thirds of a copied entry, not one, for a table a quarter larger
/// to miss in. With the GIL-free store's two-pass rebuild, remove/insert churn at 49,152
/// entries (u64 keys, pinned, min of 25 trials) took 64 – 67 ns a pair, against 72 – 79 with
/// room for `live` (twice the live entries in all) and 67 – 73 with room for `2 * live`
/// (three times, CPython's choice); simulated last-level misses (1 MiB) 4.42M against 4.81M
/// and 4.39M. Before that rebuild, which read the old buckets at random, room for `live` had
/// been the fastest (22% ahead of `2 * live`).
#[inline]
pub(crate) fn grown(live: usize, extra: usize, churn: bool) -> usize {
    let room = if churn { live + live / 2 } else { live };
    // Clamped: a table of 2^30 entries or more grows to the largest one, not past it.
    positions_for(
        live.saturating_add(room.max(extra).max(1))
            .min(MAX_POSITIONS),
    )
}

/// Whether a table with `used` positions, `live` of them live, is churning (see [`grown`]).
#[inline]
pub(crate) fn churning(used: usize, live: usize) -> bool {
    used - live >= (live / 2).max(1)
}

/// The number of buckets for a table of `positions` order positions (a whole number of
/// groups, at least 4/3 of the positions: load at most 3/4; at least two groups).
#[inline]
pub(crate) fn buckets_for(positions: usize) -> usize {
    (positions + positions / 3 + 1).div_ceil(GROUP).max(2) * GROUP
}

/// The control bytes of a table (see the module docs).
pub(crate) struct Ctrl {
    words: Box<[AtomicU64]>,
    /// Whether the table probes with spread tags (see the module docs).
    spread: bool,
}

/// A borrowed view of a table's control words: the lookup fast path, usable without going
/// through the table that owns them.
#[derive(Clone, Copy)]
pub(crate) struct CtrlView<'a> {
    words: &'a [AtomicU64],
    spread: bool,
}

impl CtrlView<'_> {
    #[inline(always)]
    fn groups(self) -> usize {
        self.words.len()
    }

    /// What the table probes with for `tag`: the tag, or in a spread table its product with
    /// [`SPREAD`]. Both the start group and the control byte come from it.
    ///
    /// The spread arm goes through `black_box`, which the compiler cannot execute ahead of the
    /// branch: as a select, the multiplication would sit on every lookup's critical path
    /// (frozen `get` 4 – 5 % slower, measured), and two copies of each walk, one per mode,
    /// cost the pinned `get` 4.7 % in spilled registers (this form: 1.5 %).
    #[inline(always)]
    fn probe_tag(self, tag: u32) -> u32 {
        if self.spread {
            std::hint::black_box(tag.wrapping_mul(SPREAD))
        } else {
            tag
        }
    }

    /// The first group of the chain of a key whose probe tag is `probe`.
    #[inline(always)]
    fn start_of(self, probe: u32) -> usize {
        ((u64::from(probe) * self.groups() as u64) >> 32) as usize
    }

    /// The first group of `tag`'s chain (multiply-shift range reduction).
    #[inline(always)]
    fn start(self, tag: u32) -> usize {
        self.start_of(self.probe_tag(tag))
    }

    /// The control byte of a bucket in use by a key with `tag`.
    #[inline(always)]
    fn byte(self, tag: u32) -> u64 {
        ctrl_byte(self.probe_tag(tag))
    }

    #[inline(always)]
    fn next_group(self, group: usize) -> usize {
        let g = group + 1;
        if g == self.groups() {
            0
        } else {
            g
        }
    }

    /// The fast path of a lookup: walks the chain of `tag`, asking `judge` about each
    /// candidate bucket, with no state beyond the group (see the module docs).
    #[inline(always)]
    pub(crate) fn find<E>(
        self,
        tag: u32,
        order: Ordering,
        mut judge: impl FnMut(usize) -> Result<Verdict, E>,
    ) -> Result<Found, E> {
        let probe = self.probe_tag(tag);
        let want = ctrl_byte(probe);
        let mut group = self.start_of(probe);
        loop {
            // SAFETY: `group < groups` always (`start`, `next_group`).
            let ctrl = unsafe { self.words.get_unchecked(group) }.load(order);
            let mut hits = matching(ctrl, want);
            while hits.any() {
                let bucket = group * GROUP + hits.lowest();
                hits = hits.rest();
                match judge(bucket)? {
                    Verdict::Match => return Ok(Found::At(bucket)),
                    Verdict::Skip => {}
                    Verdict::Unsure => return Ok(Found::Unsure),
                }
            }
            if empties(ctrl).any() {
                return Ok(Found::Absent);
            }
            group = self.next_group(group);
        }
    }

    /// [`find`](Self::find) where every candidate is judged without script code (a frozen
    /// table): the bucket whose key `is_key` accepts, if any.
    #[inline(always)]
    pub(crate) fn find_where<E>(
        self,
        tag: u32,
        order: Ordering,
        mut is_key: impl FnMut(usize) -> Result<bool, E>,
    ) -> Result<Option<usize>, E> {
        let found = self.find(tag, order, |b| {
            Ok(if is_key(b)? {
                Verdict::Match
            } else {
                Verdict::Skip
            })
        })?;
        Ok(match found {
            Found::At(b) => Some(b),
            Found::Absent | Found::Unsure => None,
        })
    }
}

/// Where a step-by-step probe (the slow path, for script `eq`) stands: the group being looked
/// at, the candidates of that group not yet returned, and whether it ends the chain.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    group: usize,
    /// Candidate buckets of `group` not yet returned.
    pending: Hits,
    /// `group` has been matched (`pending` is valid).
    loaded: bool,
    /// `group` holds an empty bucket: the chain ends with it.
    last: bool,
}

/// What [`Ctrl::find`]'s judge says of a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The key: stop here.
    Match,
    /// Not the key: go on.
    Skip,
    /// Cannot tell without running script code: stop, the caller takes the slow path.
    Unsure,
}

impl Verdict {
    /// A frozen table's answer for a candidate judged `self` without script code: a match or
    /// a skip settles it; an unsure one goes to `script` only if the candidate's full hash tag
    /// is the key's (`same_tag`), so script `eq` never runs on a key of another hash.
    #[inline(always)]
    pub(crate) fn or_script<E>(
        self,
        same_tag: impl FnOnce() -> bool,
        script: impl FnOnce() -> Result<bool, E>,
    ) -> Result<bool, E> {
        match self {
            Verdict::Match => Ok(true),
            Verdict::Skip => Ok(false),
            Verdict::Unsure => Ok(same_tag() && script()?),
        }
    }
}

/// How [`Ctrl::find`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// The entry in this bucket.
    At(usize),
    /// The chain ended without a match.
    Absent,
    /// A candidate needed script code.
    Unsure,
}

impl Ctrl {
    /// All-empty control bytes for `buckets` buckets (a multiple of [`GROUP`]), probing with
    /// spread tags if `spread` (see the module docs).
    pub(crate) fn new(buckets: usize, spread: bool) -> Ctrl {
        debug_assert!(buckets % GROUP == 0 && buckets >= 2 * GROUP);
        Ctrl {
            // SAFETY: all-zero atomics: every byte empty.
            words: unsafe { crate::sync::zeroed_slice(buckets / GROUP) },
            spread,
        }
    }

    /// The control words, borrowed: what a lookup needs, for a caller that keeps it at hand
    /// (a frozen view) instead of reaching it through the table each time.
    #[inline(always)]
    pub(crate) fn view(&self) -> CtrlView<'_> {
        CtrlView {
            words: &self.words,
            spread: self.spread,
        }
    }

    /// Whether the table probes with spread tags (a rebuild keeps the mode).
    #[inline]
    pub(crate) fn spread(&self) -> bool {
        self.spread
    }

    #[inline(always)]
    fn groups(&self) -> usize {
        self.view().groups()
    }

    #[inline(always)]
    fn start(&self, tag: u32) -> usize {
        self.view().start(tag)
    }

    #[inline(always)]
    fn next_group(&self, group: usize) -> usize {
        self.view().next_group(group)
    }

    /// The fast path of a lookup (see [`CtrlView::find`]).
    #[inline(always)]
    pub(crate) fn find<E>(
        &self,
        tag: u32,
        order: Ordering,
        judge: impl FnMut(usize) -> Result<Verdict, E>,
    ) -> Result<Found, E> {
        self.view().find(tag, order, judge)
    }

    /// Starts loading the first control word of `tag`'s chain (see `sync::prefetch`), and
    /// returns the first bucket of that group (whose lines the caller may prefetch too).
    #[inline(always)]
    pub(crate) fn prefetch_start(&self, tag: u32) -> usize {
        let group = self.start(tag);
        crate::sync::prefetch(&self.words[group]);
        group * GROUP
    }

    /// Asks for the control word of `bucket` to be loaded (a hint; no effect on results).
    #[inline(always)]
    pub(crate) fn prefetch_bucket(&self, bucket: usize) {
        if let Some(word) = self.words.get(bucket / GROUP) {
            crate::sync::prefetch(word);
        }
    }

    /// The buckets in use, in bucket order (for a writer's walk over a whole table).
    pub(crate) fn full_buckets(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(group, word)| {
            let mut hits = fulls(word.load(Ordering::Relaxed));
            std::iter::from_fn(move || {
                hits.any().then(|| {
                    let b = hits.lowest();
                    hits = hits.rest();
                    group * GROUP + b
                })
            })
        })
    }

    /// The bucket where a new entry with `tag` goes, for a key known to be absent: the first
    /// empty bucket of its chain, or (`reuse`) the first empty or deleted one; and whether the
    /// chain was longer than [`FAR`] groups (a table that is not spread yet should then be
    /// rebuilt spread).
    #[inline]
    pub(crate) fn free_bucket(&self, tag: u32, reuse: bool) -> (usize, bool) {
        let mut group = self.start(tag);
        let mut walked = 0;
        loop {
            let ctrl = self.words[group].load(Ordering::Relaxed);
            let mut free = empties(ctrl).lowest();
            if reuse {
                free = free.min(matching(ctrl, DELETED).lowest());
            }
            if free < GROUP {
                return (group * GROUP + free, walked > FAR);
            }
            group = self.next_group(group);
            walked += 1;
        }
    }

    /// A step-by-step probe for `tag` from the start of its chain (the slow path).
    #[inline]
    pub(crate) fn cursor(&self, tag: u32) -> Cursor {
        Cursor {
            group: self.start(tag),
            pending: Hits::default(),
            loaded: false,
            last: false,
        }
    }

    /// The next bucket on the chain whose full 32-bit tag (`tag_of`, the table's tag array)
    /// is `tag`: [`next`](Self::next) with the control byte's false positives filtered out.
    #[inline]
    pub(crate) fn next_with_tag(
        &self,
        tag: u32,
        cursor: &mut Cursor,
        order: Ordering,
        tag_of: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        while let Some(b) = self.next(tag, cursor, order) {
            if tag_of(b) == tag {
                return Some(b);
            }
        }
        None
    }

    /// The next bucket in use whose control byte matches `tag` on the chain, or `None` once the
    /// chain ended. `order` is the load ordering (Acquire for lock-free readers).
    pub(crate) fn next(&self, tag: u32, cursor: &mut Cursor, order: Ordering) -> Option<usize> {
        loop {
            if !cursor.loaded {
                let ctrl = self.words[cursor.group].load(order);
                cursor.pending = matching(ctrl, self.view().byte(tag));
                cursor.last = empties(ctrl).any();
                cursor.loaded = true;
            }
            if cursor.pending.any() {
                let bucket = cursor.group * GROUP + cursor.pending.lowest();
                cursor.pending = cursor.pending.rest();
                return Some(bucket);
            }
            if cursor.last {
                return None;
            }
            cursor.group = self.next_group(cursor.group);
            cursor.loaded = false;
        }
    }

    /// Whether `bucket` holds an entry (`order`: Acquire for lock-free readers).
    #[inline(always)]
    pub(crate) fn is_full(&self, bucket: usize, order: Ordering) -> bool {
        let word = self.words[bucket / GROUP].load(order);
        (word >> ((bucket % GROUP) * 8)) & 0x80 != 0
    }

    /// Sets the control byte of `bucket` (writers only): the rest of the word is unchanged.
    #[inline]
    fn set(&self, bucket: usize, byte: u64, order: Ordering) {
        let word = &self.words[bucket / GROUP];
        let shift = (bucket % GROUP) * 8;
        let w = word.load(Ordering::Relaxed);
        word.store((w & !(0xFF << shift)) | (byte << shift), order);
    }

    /// Marks `bucket` in use by a key with `tag` (writers only; the bucket is filled first,
    /// `order` is Release for lock-free readers).
    #[inline]
    pub(crate) fn occupy(&self, bucket: usize, tag: u32, order: Ordering) {
        self.set(bucket, self.view().byte(tag), order);
    }

    /// Marks `bucket` removed (writers only). With `reuse` (no lock-free readers), the bucket
    /// becomes empty when its group has an empty bucket already (no chain has passed the
    /// group); otherwise it is marked deleted. Returns whether it became empty.
    #[inline]
    pub(crate) fn vacate(&self, bucket: usize, reuse: bool, order: Ordering) -> bool {
        let open = reuse && empties(self.words[bucket / GROUP].load(Ordering::Relaxed)).any();
        self.set(bucket, if open { 0 } else { DELETED }, order);
        open
    }

    /// Whether `bucket` is empty (never used, or emptied by a reusing store): a writer's
    /// question before it occupies a bucket from [`free_bucket`](Self::free_bucket).
    #[inline(always)]
    pub(crate) fn is_empty(&self, bucket: usize) -> bool {
        let word = self.words[bucket / GROUP].load(Ordering::Relaxed);
        (word >> ((bucket % GROUP) * 8)) & 0xFF == 0
    }

    /// The number of buckets.
    #[inline]
    pub(crate) fn buckets(&self) -> usize {
        self.groups() * GROUP
    }
}

#[cfg(all(test, not(gilfree_loom)))]
pub(crate) mod tests {
    use super::*;

    /// A `BuildHasher` whose hash of an integer is the integer (Python's `hash(i) == i`): tags
    /// that differ only in their low bits.
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct Identity;

    /// The hasher of [`Identity`].
    pub(crate) struct IdentityHasher(u64);

    impl std::hash::Hasher for IdentityHasher {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0 << 8 | u64::from(b);
            }
        }
        fn write_u64(&mut self, v: u64) {
            self.0 = v;
        }
    }

    impl std::hash::BuildHasher for Identity {
        type Hasher = IdentityHasher;
        fn build_hasher(&self) -> IdentityHasher {
            IdentityHasher(0)
        }
    }

    /// What the stores' spread-mode tests read of a dict's current table.
    pub(crate) trait TableMode {
        /// Whether it probes with spread tags.
        fn spread(&self) -> bool;
        /// Its order positions.
        fn positions(&self) -> usize;
    }

    /// The stores' spread-mode scenario: consecutive keys under an identity hash switch a
    /// `with_capacity(100_000)` dict to the spread mode, which keeps its room and its order;
    /// `middle` runs the store's own steps; `reserve`, growth and `clear` keep the mode; the
    /// frozen view finds every key through it; the default hasher's tags never switch it.
    pub(crate) fn spread_mode_is_kept<St: crate::dict::DictStore<u64, u64>>(
        middle: impl FnOnce(&crate::dict::Dict<u64, u64, Identity, St>),
    ) where
        crate::dict::Dict<u64, u64, Identity, St>: TableMode,
        crate::dict::Dict<u64, u64, crate::DefaultHashBuilder, St>: TableMode,
    {
        let d = crate::dict::Dict::<u64, u64, Identity, St>::with_capacity_and_hasher(
            100_000, Identity,
        );
        for k in 0..400u64 {
            d.insert(k, k).unwrap();
        }
        assert!(!d.spread(), "400 keys fit in 50 groups");
        for k in 0..100u64 {
            assert_eq!(d.remove(&k), Ok(Some(k)));
        }
        for k in 400..6_000u64 {
            d.insert(k, k).unwrap();
        }
        assert!(d.spread(), "an insert walked more than 512 groups");
        assert!(d.positions() >= 100_000, "the room of with_capacity");
        assert!(d.keys().into_iter().eq(100..6_000), "order kept");
        middle(&d);
        assert!(d.spread(), "the store's own steps");
        d.reserve(500_000).unwrap();
        assert!(d.spread(), "reserve");
        for k in 1_000_000..1_400_000u64 {
            d.insert(k, k).unwrap();
        }
        assert!(d.spread(), "growth");
        d.clear().unwrap();
        assert!(d.spread(), "clear");
        for k in 0..3_000u64 {
            d.insert(k, k * 2).unwrap();
        }
        d.freeze().unwrap();
        let f = d.frozen().unwrap();
        assert!((0..3_000).all(|k| f.get(&k) == Some(&(k * 2))));
        assert_eq!(f.get(&3_000), None);

        let mixed = crate::dict::Dict::<u64, u64, crate::DefaultHashBuilder, St>::new();
        for k in 0..200_000u64 {
            mixed.insert(k, k).unwrap();
        }
        assert!(!mixed.spread(), "the default hasher's tags are well mixed");
    }

    #[test]
    fn zero_bytes_finds_the_lowest_exactly() {
        assert_eq!(zero_bytes(0x1111_2233_4455_6677), 0);
        assert_eq!(zero_bytes(0x1111_2233_4400_6677).trailing_zeros(), 23);
        assert_eq!(zero_bytes(0), HI);
        assert!(buckets_for(7) >= 8 && buckets_for(1000) >= 1000 * 8 / 7);
    }

    /// The buckets of a set whose bit for bucket `i` is `i * stride + offset`.
    fn buckets_of(bits: u64, stride: u32, offset: u32) -> Vec<usize> {
        (0..GROUP)
            .filter(|&i| bits >> (i as u32 * stride + offset) & 1 != 0)
            .collect()
    }

    /// Both forms of a group test against a byte-by-byte model, over words mixing empty,
    /// deleted and in-use bytes: every matching bucket is in the set, the lowest is exact, and
    /// the SSE2 form reports no false positive.
    #[test]
    fn group_tests_agree_with_the_bytes() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ctrl = (0..GROUP).fold(0u64, |w, i| {
                let r = (x >> (i * 8)) as u8;
                let byte = match r % 4 {
                    0 => 0,
                    1 => DELETED as u8,
                    _ => 0x80 | (r & 0x03),
                };
                w | u64::from(byte) << (i * 8)
            });
            for byte in [0u64, DELETED, 0x80, 0x81, 0x82, 0x83] {
                let want: Vec<usize> = (0..GROUP)
                    .filter(|&i| (ctrl >> (i * 8)) & 0xFF == byte)
                    .collect();
                let swar = buckets_of(matching_swar(ctrl, byte), 8, 7);
                assert!(want.iter().all(|b| swar.contains(b)), "{ctrl:#x} {byte:#x}");
                assert_eq!(want.first(), swar.first(), "{ctrl:#x} {byte:#x}");
                #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
                assert_eq!(buckets_of(matching_sse2(ctrl, byte), 1, 0), want);
                let hits = matching(ctrl, byte);
                assert_eq!(hits.any(), !want.is_empty());
                assert_eq!(
                    hits.lowest().min(GROUP),
                    want.first().copied().unwrap_or(GROUP)
                );
            }
        }
    }

    fn chain(c: &Ctrl, tag: u32) -> Vec<usize> {
        let mut cur = c.cursor(tag);
        std::iter::from_fn(|| c.next(tag, &mut cur, Ordering::Relaxed)).collect()
    }

    fn place(c: &Ctrl, tag: u32) -> usize {
        let (b, _) = c.free_bucket(tag, false);
        c.occupy(b, tag, Ordering::Relaxed);
        b
    }

    #[test]
    fn full_buckets_lists_exactly_the_buckets_in_use_in_order() {
        let c = Ctrl::new(5 * GROUP, false);
        let mut model = std::collections::BTreeSet::new();
        // Tags over every control byte and start group; a removal in every third insert.
        for i in 0..3 * GROUP as u32 {
            let tag = i.wrapping_mul(0x9E37_79B9);
            let (b, _) = c.free_bucket(tag, false);
            c.occupy(b, tag, Ordering::Relaxed);
            model.insert(b);
            if i % 3 == 2 {
                let gone = *model.iter().nth(i as usize % model.len()).unwrap();
                c.vacate(gone, false, Ordering::Relaxed);
                model.remove(&gone);
            }
            assert_eq!(
                c.full_buckets().collect::<Vec<_>>(),
                model.iter().copied().collect::<Vec<_>>()
            );
        }
        // Every byte value a full bucket can hold, in one group, including 0xFF.
        let c = Ctrl::new(2 * GROUP, false);
        for (b, tag) in (0..GROUP).zip([0x00, 0x7F, 0x01, 0x80, 0xFF, 0x55, 0x2A, 0x7E]) {
            c.occupy(b, tag, Ordering::Relaxed);
        }
        assert_eq!(
            c.full_buckets().collect::<Vec<_>>(),
            (0..GROUP).collect::<Vec<_>>()
        );
        assert_eq!(
            fulls(0x0101_0000_0000_0100),
            Hits::default(),
            "deleted bytes are not full"
        );
    }

    #[test]
    fn full_groups_extend_chains_and_deleted_marks_stay() {
        let c = Ctrl::new(4 * GROUP, false);
        // More entries with one tag than a group holds: the chain spills into the next group.
        let n = GROUP + 2;
        let buckets: Vec<usize> = (0..n).map(|_| place(&c, 9)).collect();
        assert_eq!(chain(&c, 9), buckets);
        assert!(chain(&c, 9 ^ 1).is_empty(), "another control byte");
        // Without reuse a removal is marked deleted, skipped, and never handed out again.
        c.vacate(buckets[0], false, Ordering::Relaxed);
        assert!(!c.is_full(buckets[0], Ordering::Relaxed));
        assert_eq!(chain(&c, 9), buckets[1..].to_vec());
        assert_ne!(c.free_bucket(9, false).0, buckets[0]);
        // With reuse, the deleted bucket of the full group is handed out first; a removal in a
        // group with empty buckets empties its bucket.
        assert_eq!(c.free_bucket(9, true).0, buckets[0]);
        c.vacate(buckets[n - 1], true, Ordering::Relaxed);
        assert_eq!(chain(&c, 9), buckets[1..n - 1].to_vec());
        let found = c.find(9, Ordering::Relaxed, |b| {
            Ok::<_, ()>(if b == buckets[3] {
                Verdict::Match
            } else {
                Verdict::Skip
            })
        });
        assert_eq!(found, Ok(Found::At(buckets[3])));
    }

    /// Consecutive tags (an identity hash: Python's `hash(i)` is `i`) all start in the first
    /// group of a table that is not spread, and pile up into one chain that inserts soon walk
    /// past `FAR`; a spread table scatters them, and every chain stays short.
    #[test]
    fn spread_tables_scatter_consecutive_tags() {
        let n = 3 * 4096;
        let buckets = buckets_for(n);
        let (plain, spread) = (Ctrl::new(buckets, false), Ctrl::new(buckets, true));
        let groups = buckets / GROUP;
        let (mut far_plain, mut longest, mut placed) = (0, 0, Vec::new());
        for tag in 0..n as u32 {
            let (b, far) = plain.free_bucket(tag, false);
            plain.occupy(b, tag, Ordering::Relaxed);
            far_plain += usize::from(far);
            let (b, far) = spread.free_bucket(tag, false);
            assert!(!far, "tag {tag}");
            spread.occupy(b, tag, Ordering::Relaxed);
            placed.push(b);
            longest = longest.max((b / GROUP + groups - spread.start(tag)) % groups);
        }
        assert!(far_plain > n / 2, "{far_plain} far inserts");
        assert!(longest <= 4, "a chain of {longest} groups");
        // Each key is found on its chain (the control byte, too, comes from the spread tag).
        for tag in (0..n as u32).step_by(97) {
            assert!(
                chain(&spread, tag).contains(&placed[tag as usize]),
                "tag {tag}"
            );
        }
    }
}
