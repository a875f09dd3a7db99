//! The key-comparison step shared by every keyed lookup.
//!
//! A probe yields candidates whose stored hash tag matches the searched hash (the 7-bit
//! control byte in the fast path, then the bucket's 32-bit tag). Each candidate is
//! settled here if that needs no script code (identity, or a pure `eq`); otherwise the caller
//! must leave its critical section, call `eq`, and validate that the table did not change
//! underneath (restarting otherwise, at most [`MAX_LOOKUP_RESTARTS`] times), as CPython does.

use crate::model::EqModel;
use crate::Error;

/// How many times a lookup restarts after script `eq` saw the dict mutate, before it gives up
/// with [`Error::MutatedDuringLookup`].
pub const MAX_LOOKUP_RESTARTS: usize = 64;

/// Outcome of comparing a candidate without running script code.
pub(crate) enum Quick {
    Equal,
    NotEqual,
    /// `eq` may run script code: call it outside any lock and validate afterwards.
    Script,
}

/// Identity first, then a pure `eq`; anything else is left to the caller.
#[inline]
pub(crate) fn quick_compare<K: ?Sized, Q: ?Sized, M: EqModel<K, Q>>(
    m: &M,
    stored: &K,
    probe: &Q,
) -> Result<Quick, Error<M::Error>> {
    if m.identical(stored, probe) {
        Ok(Quick::Equal)
    } else if m.eq_is_pure(stored, probe) {
        match m.eq(stored, probe) {
            Ok(true) => Ok(Quick::Equal),
            Ok(false) => Ok(Quick::NotEqual),
            Err(e) => Err(Error::Callback(e)),
        }
    } else {
        Ok(Quick::Script)
    }
}

/// Counts a restart; fails once the cap is exceeded.
#[inline]
pub(crate) fn restart<E>(restarts: &mut usize) -> Result<(), Error<E>> {
    *restarts += 1;
    if *restarts > MAX_LOOKUP_RESTARTS {
        Err(Error::MutatedDuringLookup)
    } else {
        Ok(())
    }
}
