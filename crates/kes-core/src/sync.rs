//! Locks that outlive a panic.
//!
//! A std lock is poisoned when a thread panics while holding it. KES's
//! locks guard maps, lists, counters and slots whose every update is one
//! step that a panic cannot leave half done, so a poisoned lock still
//! guards consistent data: these take it over instead of turning one
//! panic into a panic of every later caller.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, also when a panic poisoned it.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a shared lock on `lock`, also when a panic poisoned it.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the exclusive lock on `lock`, also when a panic poisoned it.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics(f: impl FnOnce() + std::panic::UnwindSafe) {
        assert!(std::panic::catch_unwind(f).is_err());
    }

    #[test]
    fn poisoned_locks_are_taken_over() {
        let mutex = Mutex::new(1);
        panics(|| {
            let _held = mutex.lock().unwrap();
            panic!("poisons the mutex");
        });
        assert!(mutex.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 2);

        let rw = RwLock::new(vec![1]);
        panics(|| {
            let _held = rw.write().unwrap();
            panic!("poisons the rwlock");
        });
        assert!(rw.is_poisoned());
        write(&rw).push(2);
        assert_eq!(*read(&rw), [1, 2]);
    }
}
