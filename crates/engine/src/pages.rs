//! Keyset pages, shared by the token and run lists: what a list request's page and creation
//! filters become for the store, and how the rows the store returns become a page.

use std::time::Duration;

use waitpoint_storage::{Cursor, Window};
use waitpoint_types::Timestamp;
use waitpoint_types::id::internal_floor;

use crate::error::{EngineError, Result};

/// The most items a page holds.
pub const MAX_PAGE_SIZE: usize = 100;
/// Items per page when the request does not say.
pub const DEFAULT_PAGE_SIZE: usize = 25;

/// Which page a list request asks for: its size, its cursors (as the previous page gave them)
/// and the creation-time filters. Part of every list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Items per page, 1 to [`MAX_PAGE_SIZE`]; [`DEFAULT_PAGE_SIZE`] when `None`.
    pub page_size: Option<usize>,
    /// Cursor: the page after (older than) this one.
    pub after: Option<String>,
    /// Cursor: the page before (newer than) this one. Wins over `after`.
    pub before: Option<String>,
    /// Created within this long before now.
    pub period: Option<Duration>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created at or before.
    pub to: Option<Timestamp>,
}

/// A page request in the store's terms, and what cuts the store's rows into the page. The
/// store is asked for one item more than the page holds, to know whether more follow.
#[derive(Debug)]
pub(crate) struct Pager {
    /// Items on the page.
    pub(crate) size: usize,
    pub(crate) window: Window,
}

impl ListPage {
    /// Checks the request and turns it into a [`Pager`] at `now`; `internal_id` reads a
    /// cursor (an item's public id) as the internal id the store orders by. Ids begin with
    /// their creation time, so creation bounds become id bounds.
    pub(crate) fn pager(&self, now: Timestamp, internal_id: impl Fn(&str) -> Option<String>) -> Result<Pager> {
        let size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(EngineError::Invalid(format!("page size must be between 1 and {MAX_PAGE_SIZE}, got {size}")));
        }
        let cursor_id = |cursor: &str| {
            internal_id(cursor).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "invalid page cursor {cursor:?}: pass a pagination.next or pagination.previous value back unchanged"
                ))
            })
        };
        let cursor = match (&self.before, &self.after) {
            (Some(before), _) => Cursor::Before(cursor_id(before)?),
            (None, Some(after)) => Cursor::After(cursor_id(after)?),
            (None, None) => Cursor::Newest,
        };
        let from = match (self.period.map(|period| now.saturating_sub(period)), self.from) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(Pager {
            size,
            window: Window {
                id_at_least: from.map(internal_floor),
                id_below: self.to.map(|to| internal_floor(to.saturating_add(Duration::from_millis(1)))),
                cursor,
                limit: size + 1,
            },
        })
    }
}

/// A page of items, newest first, with the cursors of the pages around it.
#[derive(Debug)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next: Option<String>,
    pub(crate) previous: Option<String>,
}

impl Pager {
    /// Cuts the rows the store returned for this window (up to `size + 1`, in the order of
    /// its walk) to a page; `cursor_of` gives an item's cursor.
    pub(crate) fn page<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let has_more = rows.len() > self.size;
        rows.truncate(self.size);
        match self.window.cursor {
            Cursor::Newest | Cursor::After(_) => Page {
                next: has_more.then(|| rows.last().map(&cursor_of)).flatten(),
                previous: matches!(self.window.cursor, Cursor::After(_))
                    .then(|| rows.first().map(&cursor_of))
                    .flatten(),
                items: rows,
            },
            Cursor::Before(_) => {
                rows.reverse();
                Page {
                    // Older items always exist: at least the cursor's own.
                    next: rows.last().map(&cursor_of),
                    previous: has_more.then(|| rows.first().map(&cursor_of)).flatten(),
                    items: rows,
                }
            }
        }
    }
}
