//! redb trusts the bytes of its own file: on some damaged pages its readers
//! panic (a slice out of range, invalid UTF-8) instead of returning
//! `Corrupted`. A journal must report damage, never crash, so every redb
//! call runs inside [`contain`], which turns such a panic into
//! [`JournalError::Corrupt`] and keeps it off stderr.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use crate::{JournalError, Result};

thread_local! {
    /// Set while this thread runs a contained call: its panics are expected.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`, converting a panic inside it into a corruption error.
pub(crate) fn contain<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let outer = CONTAINED.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        Err(JournalError::Corrupt {
            path: path.to_owned(),
            detail: format!("a damaged page was found ({detail})"),
        })
    })
}
