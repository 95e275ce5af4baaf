//! What the token and run lists share: the idempotency-key filter, the window's id bounds and
//! cursor, and the merge of several index walks into one page.

use waitpoint_storage::{Cursor, Window};

use crate::args::Args;

/// The filter (` AND …`) to rows of `table` (aliased `alias`, in environment `?1`) whose
/// idempotency key, active or inactive, is `key`; each is looked up through its own index.
pub(crate) fn idempotency_key_filter(args: &mut Args, table: &str, alias: &str, key: &str) -> String {
    let key = args.push(key.to_owned());
    format!(
        " AND {alias}.id IN (SELECT id FROM {table} WHERE environment_id = ?1 AND idempotency_key = {key} \
         UNION ALL SELECT id FROM {table} WHERE environment_id = ?1 AND inactive_idempotency_key = {key})"
    )
}

/// The window's filters on `id_column` (each ` AND …`), the order of the walk, and the
/// placeholder of its limit.
pub(crate) fn window_filters(args: &mut Args, window: &Window, id_column: &str) -> (String, &'static str, String) {
    let mut filters = String::new();
    if let Some(bound) = &window.id_at_least {
        filters += &format!(" AND {id_column} >= {}", args.push(bound.clone()));
    }
    if let Some(bound) = &window.id_below {
        filters += &format!(" AND {id_column} < {}", args.push(bound.clone()));
    }
    let order = match &window.cursor {
        Cursor::Newest => "DESC",
        Cursor::After(id) => {
            filters += &format!(" AND {id_column} < {}", args.push(id.clone()));
            "DESC"
        }
        Cursor::Before(id) => {
            filters += &format!(" AND {id_column} > {}", args.push(id.clone()));
            "ASC"
        }
    };
    let limit = args.push(i64::try_from(window.limit).unwrap_or(i64::MAX));
    (filters, order, limit)
}

/// One query for several walks, each already limited to a page: the overall first `limit`
/// rows are among the first `limit` of some walk.
pub(crate) fn merge(walks: &[String], order: &str, limit: &str) -> String {
    match walks {
        [one] => one.clone(),
        several => {
            let merged: Vec<String> = several.iter().map(|walk| format!("SELECT * FROM ({walk})")).collect();
            format!("SELECT * FROM ({}) ORDER BY 1 {order} LIMIT {limit}", merged.join(" UNION "))
        }
    }
}
