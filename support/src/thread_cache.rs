//! Per-thread caches of compiled things (validators, pattern regexes) looked up on every call.
//!
//! Each thread keeps a short list scanned by key, so a lookup takes no lock and hashes nothing;
//! the keys are addresses of `'static` strings, and the lists hold a handful of entries.

use std::{cell::RefCell, thread::LocalKey};

/// One thread's cached values, by key.
pub(crate) type PerThread<K, V> = RefCell<Vec<(K, V)>>;

/// Hands `use_it` this thread's value for `key` in `cache`, made with `make` the first time the
/// thread asks for it (a failure to make it is returned and nothing is cached).
pub(crate) fn with_cached<K: PartialEq, V, E, R>(
    cache: &'static LocalKey<PerThread<K, V>>,
    key: K,
    make: impl FnOnce() -> Result<V, E>,
    use_it: impl FnOnce(&V) -> R,
) -> Result<R, E> {
    cache.with_borrow_mut(|entries| {
        let at = match entries.iter().position(|(known, _)| *known == key) {
            Some(at) => at,
            None => {
                entries.push((key, make()?));
                entries.len() - 1
            }
        };
        Ok(use_it(&entries[at].1))
    })
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::{with_cached, PerThread};

    #[test]
    fn makes_once_per_key_and_keeps_no_failure() {
        thread_local! {
            static CACHE: PerThread<u8, String> = const { RefCell::new(Vec::new()) };
        }
        let made = Cell::new(0);
        let make = |text: &str| {
            made.set(made.get() + 1);
            Ok::<_, ()>(text.to_string())
        };
        assert_eq!(with_cached(&CACHE, 1, || make("one"), String::len), Ok(3));
        assert_eq!(with_cached(&CACHE, 1, || make("ignored"), String::clone), Ok("one".to_string()));
        assert_eq!(with_cached(&CACHE, 2, || Err(()), String::len), Err(()));
        assert_eq!(with_cached(&CACHE, 2, || make("two"), String::clone), Ok("two".to_string()));
        assert_eq!(made.get(), 2, "one make per key; the failed one was not kept");
    }
}
