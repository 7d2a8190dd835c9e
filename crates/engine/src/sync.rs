//! Locks that survive a panic.
//!
//! A panic while a `std::sync::Mutex` is held poisons it, and `lock().expect(..)` would then
//! panic in every later caller: one failed job would take the whole engine down. The data these
//! locks guard stays consistent between statements (no invariant spans a panic point), so the
//! guard of a poisoned lock is taken as it is.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, whether or not an earlier holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
