//! What the token and run lists share: the idempotency-key filter, and the window's id bounds
//! and cursor.

use tokio_postgres::types::ToSql;
use waitpoint_storage::{Cursor, Window};

use crate::bind;

/// The filter (` AND …`) to rows of `table` (aliased `alias`, in environment `$1`) whose
/// idempotency key, active or inactive, is `key`; each is looked up through its own index.
pub(crate) fn idempotency_key_filter<'a>(
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
    table: &str,
    alias: &str,
    key: &'a String,
) -> String {
    let key = bind(params, key);
    format!(
        " AND {alias}.id IN (SELECT id FROM {table} WHERE environment_id = $1 AND idempotency_key = {key} \
         UNION ALL SELECT id FROM {table} WHERE environment_id = $1 AND inactive_idempotency_key = {key})"
    )
}

/// The window's filters on `id_column` (each ` AND …`), the order of the walk, and the
/// placeholder of `limit` (the window's, as the statement takes it).
pub(crate) fn window_filters<'a>(
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
    window: &'a Window,
    limit: &'a i64,
    id_column: &str,
) -> (String, &'static str, String) {
    let mut filters = String::new();
    if let Some(bound) = &window.id_at_least {
        filters += &format!(" AND {id_column} >= {}", bind(params, bound));
    }
    if let Some(bound) = &window.id_below {
        filters += &format!(" AND {id_column} < {}", bind(params, bound));
    }
    let order = match &window.cursor {
        Cursor::Newest => "DESC",
        Cursor::After(id) => {
            filters += &format!(" AND {id_column} < {}", bind(params, id));
            "DESC"
        }
        Cursor::Before(id) => {
            filters += &format!(" AND {id_column} > {}", bind(params, id));
            "ASC"
        }
    };
    (filters, order, bind(params, limit))
}
