//! How the GIL-free containers keep a value: inline in one atomic word, or boxed.
//!
//! A `GilFreeDict` value or a `GilFreeList` item lives in a 64-bit atomic *word* that lock-free
//! readers load while a writer may replace it. What the word holds depends on the type:
//!
//! - **Inline** ([`InlineWord`] types: integers, floats, `bool`, `char`, `Arc<T>`,
//!   `Option<Arc<T>>`, `&'static T`, and an interpreter's own one-word handles): the word *is*
//!   the value's bytes. A read is one atomic load and a bitwise copy; a write stores the new
//!   bytes; nothing is allocated. A reader that borrows the value borrows a copy of those bytes
//!   (which, for a handle, designates the same object), and the container keeps the original
//!   alive until no reader can hold such a copy (epoch reclamation).
//! - **Boxed** (everything else: `String`, `Vec<T>`, 16-byte enums, types with inline interior
//!   mutability): the word is a pointer to a heap box, written once before it is published.
//!   Each write allocates a box; readers borrow the box itself.
//!
//! Rust has no specialization, so a type says which path it takes by implementing
//! [`Storable`]: every [`InlineWord`] type is inline through a blanket impl, the standard
//! library's other common types are boxed, and a type of your own takes one line
//! (`impl Storable for MyValue { type Storage = Boxed; }`, or `unsafe impl InlineWord for
//! MyHandle {}` for a one-word handle). A type from another crate can be wrapped in
//! [`BoxedValue<T>`] (whose storage is `Boxed`).
//!
//! Only the GIL-free containers need this: `LockedDict` and `LockedList` store any type as it
//! is, behind their lock.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::ops::Deref;
use std::ptr;

use crate::sync::{AtomicU64, Ordering};

/// Types stored inline, as their own bytes, in one atomic word of a GIL-free container.
///
/// # Safety
///
/// Implement it only for a type that
/// - is at most 8 bytes large with an alignment of at most 8;
/// - has every byte of every value initialized (no padding, no `MaybeUninit`: an `Option<u32>`
///   does not qualify, an `Option<Arc<T>>` does);
/// - can be used through a bitwise copy exactly as through the original for shared access:
///   no interior mutability stored inline (an `AtomicU64` or `Cell` field does not qualify; the
///   shared count of an `Arc`, which lives on the heap, does);
/// - is `Send + Sync`, and whose value stays valid when the original is moved bitwise
///   (true of every Rust type that is not pinned).
///
/// The containers drop each stored value exactly once, after every reader that could hold a
/// copy of it is done.
pub unsafe trait InlineWord: Sized + Send + Sync {}

macro_rules! inline_word {
    ($($t:ty),* $(,)?) => { $(
        // SAFETY: a plain scalar of at most 8 bytes, no padding, no interior mutability.
        unsafe impl InlineWord for $t {}
    )* };
}

inline_word!(
    u8,
    u16,
    u32,
    u64,
    usize,
    i8,
    i16,
    i32,
    i64,
    isize,
    f32,
    f64,
    bool,
    char,
    ()
);
inline_word!(
    std::num::NonZeroU8,
    std::num::NonZeroU16,
    std::num::NonZeroU32,
    std::num::NonZeroU64,
    std::num::NonZeroUsize,
    std::num::NonZeroI8,
    std::num::NonZeroI16,
    std::num::NonZeroI32,
    std::num::NonZeroI64,
    std::num::NonZeroIsize,
    Option<std::num::NonZeroU32>,
    Option<std::num::NonZeroU64>,
    Option<std::num::NonZeroUsize>,
);

// SAFETY: one non-null pointer; the count and the value are on the heap, shared by every copy.
unsafe impl<T: Send + Sync> InlineWord for std::sync::Arc<T> {}
// SAFETY: as `Arc`, with `None` as the null pointer (all bytes initialized).
unsafe impl<T: Send + Sync> InlineWord for Option<std::sync::Arc<T>> {}
// SAFETY: one non-null pointer to shared, immutable data.
unsafe impl<T: Sync> InlineWord for &'static T {}
// SAFETY: as `&'static T`, with `None` as null.
unsafe impl<T: Sync> InlineWord for Option<&'static T> {}

/// How a GIL-free container stores values of this type: [`Inline`] or [`Boxed`].
///
/// See the [module docs](self). Every [`InlineWord`] type is `Inline`; implement it for a type
/// of your own with `type Storage = Boxed;` (any type) or by implementing [`InlineWord`].
pub trait Storable: Sized {
    /// [`Inline`] or [`Boxed`].
    type Storage: Storage<Self>;
}

impl<T: InlineWord> Storable for T {
    type Storage = Inline;
}

macro_rules! boxed_storable {
    ($(impl<$($g:ident),*> for $t:ty;)*) => { $(
        impl<$($g),*> Storable for $t { type Storage = Boxed; }
    )* };
}

boxed_storable! {
    impl<> for String;
    impl<> for std::ffi::OsString;
    impl<> for std::path::PathBuf;
    impl<> for std::sync::Arc<str>;
    impl<T> for std::sync::Arc<[T]>;
    impl<T> for Vec<T>;
    impl<T> for std::collections::VecDeque<T>;
    impl<K, V, S> for std::collections::HashMap<K, V, S>;
    impl<T, S> for std::collections::HashSet<T, S>;
    impl<K, V> for std::collections::BTreeMap<K, V>;
    impl<T> for std::collections::BTreeSet<T>;
    impl<A, B> for (A, B);
    impl<A, B, C> for (A, B, C);
    impl<A, B, C, D> for (A, B, C, D);
}

mod sealed {
    pub trait Sealed {}
}

/// A storage strategy ([`Inline`] or [`Boxed`]): how a value becomes a word and back.
///
/// # Safety
/// Implemented by this crate only (sealed). Every method documents what the caller promises.
pub unsafe trait Storage<V>: sealed::Sealed {
    /// Whether a word owns something to drop: `false` for inline values without drop glue
    /// (a removed `u64` needs no reclamation at all).
    const OWNS: bool;

    /// Turns a value into the word that owns it.
    fn into_word(value: V) -> u64;

    /// Takes the value back out of a word made by [`into_word`](Self::into_word).
    ///
    /// # Safety
    /// `word` came from `into_word` and is taken back (or dropped) once.
    unsafe fn from_word(word: u64) -> V;

    /// Borrows the value a word holds, for `'a`.
    ///
    /// # Safety
    /// The word's value stays alive (not dropped, not taken back) for `'a`.
    unsafe fn borrow<'a>(word: u64) -> Ref<'a, V>;

    /// A reference to the value in `slot`, valid for `'a`.
    ///
    /// # Safety
    /// `slot` holds a word made by `into_word`, and no thread writes `slot` or drops its value
    /// during `'a` (a frozen container).
    unsafe fn frozen(slot: &AtomicU64) -> &V;

    /// Drops the value a word owns.
    ///
    /// # Safety
    /// As [`from_word`](Self::from_word).
    unsafe fn drop_word(word: u64) {
        // SAFETY: forwarded.
        drop(unsafe { Self::from_word(word) });
    }
}

/// The word holds the value's own bytes (see [`InlineWord`]).
#[derive(Debug, Clone, Copy)]
pub struct Inline;

/// The word holds a pointer to a heap box holding the value.
#[derive(Debug, Clone, Copy)]
pub struct Boxed;

impl sealed::Sealed for Inline {}
impl sealed::Sealed for Boxed {}

/// Where an inline value's bytes sit in its word: the low-order bytes, whichever the byte order.
#[inline(always)]
const fn inline_offset<V>() -> usize {
    if cfg!(target_endian = "big") {
        8 - mem::size_of::<V>()
    } else {
        0
    }
}

// SAFETY: `InlineWord` guarantees at most 8 fully initialized bytes of alignment at most 8, so
// a value round-trips through the low-order bytes of a zeroed `u64`.
unsafe impl<V: InlineWord> Storage<V> for Inline {
    const OWNS: bool = mem::needs_drop::<V>();

    #[inline(always)]
    fn into_word(value: V) -> u64 {
        const { assert!(mem::size_of::<V>() <= 8 && mem::align_of::<V>() <= 8) };
        let mut word = 0u64;
        // SAFETY: `V` fits in the word (asserted above); the bytes written are initialized
        // (`InlineWord`) and the rest stay zero, so the word is a valid `u64`.
        unsafe {
            ptr::write_unaligned(
                (&mut word as *mut u64)
                    .cast::<u8>()
                    .add(inline_offset::<V>())
                    .cast::<V>(),
                value,
            )
        };
        word
    }

    #[inline(always)]
    unsafe fn from_word(word: u64) -> V {
        // SAFETY: the word was made by `into_word`, so these bytes are a valid `V`, and the
        // caller takes it back once.
        unsafe {
            ptr::read_unaligned(
                (&word as *const u64)
                    .cast::<u8>()
                    .add(inline_offset::<V>())
                    .cast::<V>(),
            )
        }
    }

    #[inline(always)]
    unsafe fn borrow<'a>(word: u64) -> Ref<'a, V> {
        Ref {
            // SAFETY: a bitwise copy used for shared access only and never dropped; the
            // original stays alive for `'a` (caller), which is what a copy of a handle needs.
            inner: RefInner::Copy(ManuallyDrop::new(unsafe { Self::from_word(word) })),
            _life: PhantomData,
        }
    }

    #[inline(always)]
    unsafe fn frozen(slot: &AtomicU64) -> &V {
        #[cfg(not(gilfree_loom))]
        {
            // SAFETY: the slot holds `V`'s bytes at this offset (`into_word`), suitably aligned
            // (an 8-aligned word, an offset that is a multiple of `V`'s size), and nobody writes
            // it during `'a` (caller): reading it as `V` races with no write.
            unsafe {
                &*(slot as *const AtomicU64)
                    .cast::<u8>()
                    .add(inline_offset::<V>())
                    .cast::<V>()
            }
        }
        #[cfg(gilfree_loom)]
        {
            // Loom's atomics are not plain memory: lend a leaked copy (loom tests only).
            // SAFETY: as `borrow`.
            let copy = unsafe { Self::from_word(slot.load(Ordering::Acquire)) };
            &*Box::leak(Box::new(ManuallyDrop::new(copy)))
        }
    }
}

/// A boxed value's address as a word (its provenance exposed, so it can be rebuilt).
#[inline(always)]
fn box_word<V>(b: Box<V>) -> u64 {
    Box::into_raw(b).expose_provenance() as u64
}

#[inline(always)]
fn box_ptr<V>(word: u64) -> *mut V {
    ptr::with_exposed_provenance_mut(word as usize)
}

// SAFETY: a word is the exposed address of a `Box<V>` made by `into_word`.
unsafe impl<V> Storage<V> for Boxed {
    const OWNS: bool = true;

    #[inline(always)]
    fn into_word(value: V) -> u64 {
        box_word(Box::new(value))
    }

    #[inline(always)]
    unsafe fn from_word(word: u64) -> V {
        // SAFETY: the box made by `into_word`, taken back once (caller).
        *unsafe { Box::from_raw(box_ptr::<V>(word)) }
    }

    #[inline(always)]
    unsafe fn borrow<'a>(word: u64) -> Ref<'a, V> {
        Ref {
            // SAFETY: the box stays alive for `'a` (caller) and is never written after it was
            // published.
            inner: RefInner::Shared(unsafe { &*box_ptr::<V>(word) }),
            _life: PhantomData,
        }
    }

    #[inline(always)]
    unsafe fn frozen(slot: &AtomicU64) -> &V {
        // SAFETY: the slot's box lives and is not written during `'a` (caller).
        unsafe { &*box_ptr::<V>(slot.load(Ordering::Acquire)) }
    }
}

/// A borrowed value read from a GIL-free container: dereferences to `V`.
///
/// For a boxed value it is a reference into the container; for an inline value it is a copy
/// of the value's bytes (a handle to the same object), valid for as long as the read session
/// it came from (`'a`), never dropped. Either way no refcount is touched.
pub struct Ref<'a, V> {
    inner: RefInner<'a, V>,
    _life: PhantomData<&'a V>,
}

impl<'a, V> Ref<'a, V> {
    /// A reference into the container.
    #[inline(always)]
    pub(crate) fn shared(value: &'a V) -> Self {
        Ref {
            inner: RefInner::Shared(value),
            _life: PhantomData,
        }
    }
}

enum RefInner<'a, V> {
    Shared(&'a V),
    Copy(ManuallyDrop<V>),
}

impl<V> Deref for Ref<'_, V> {
    type Target = V;

    #[inline(always)]
    fn deref(&self) -> &V {
        match &self.inner {
            RefInner::Shared(v) => v,
            RefInner::Copy(v) => v,
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for Ref<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<V: PartialEq> PartialEq<V> for Ref<'_, V> {
    fn eq(&self, other: &V) -> bool {
        **self == *other
    }
}

impl<V: PartialEq> PartialEq for Ref<'_, V> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<V: std::fmt::Display> std::fmt::Display for Ref<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<V: Clone> Ref<'_, V> {
    /// A clone of the value (a refcount increment for a handle).
    pub fn cloned(&self) -> V {
        (**self).clone()
    }
}

/// A value of any type, stored boxed in a GIL-free container: the wrapper for a type from
/// another crate that does not implement [`Storable`] (Rust's orphan rule keeps you from
/// implementing it there). Dereferences to `T`.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct BoxedValue<T>(pub T);

impl<T> Storable for BoxedValue<T> {
    type Storage = Boxed;
}

impl<T> BoxedValue<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for BoxedValue<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for BoxedValue<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for BoxedValue<T> {
    fn from(value: T) -> Self {
        BoxedValue(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for BoxedValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(all(test, not(gilfree_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn round_trip<V: Storable + Clone + PartialEq + fmt::Debug>(v: V) {
        let w = V::Storage::into_word(v.clone());
        // SAFETY: `w` is alive until `from_word` below.
        assert_eq!(*unsafe { V::Storage::borrow(w) }, v);
        let slot = AtomicU64::new(w);
        // SAFETY: nobody writes `slot`.
        assert_eq!(unsafe { V::Storage::frozen(&slot) }, &v);
        // SAFETY: taken back once.
        assert_eq!(unsafe { V::Storage::from_word(w) }, v);
    }

    #[test]
    fn values_round_trip() {
        round_trip(0xdead_beef_u64);
        round_trip(-7i64);
        round_trip(-7i8);
        round_trip(u16::MAX);
        round_trip(1.5f64);
        round_trip(2.5f32);
        round_trip(true);
        round_trip('λ');
        round_trip(Arc::new(5u32));
        round_trip(None::<Arc<u32>>);
        round_trip(String::from("boxed"));
        round_trip(vec![1u8, 2, 3]);
        round_trip((1u64, String::from("pair")));
        round_trip(BoxedValue([7u64; 4]));
    }

    #[test]
    fn inline_arc_keeps_one_count() {
        let a = Arc::new(1);
        let w = <Arc<i32> as Storable>::Storage::into_word(a.clone());
        assert_eq!(Arc::strong_count(&a), 2);
        // SAFETY: alive until dropped below.
        let r = unsafe { <Inline as Storage<Arc<i32>>>::borrow(w) };
        assert_eq!(Arc::strong_count(&r), 2);
        let _ = r;
        assert_eq!(Arc::strong_count(&a), 2);
        // SAFETY: dropped once.
        unsafe { <Inline as Storage<Arc<i32>>>::drop_word(w) };
        assert_eq!(Arc::strong_count(&a), 1);
        const { assert!(!<Inline as Storage<u64>>::OWNS) };
        const { assert!(<Inline as Storage<Arc<i32>>>::OWNS) };
    }
}
