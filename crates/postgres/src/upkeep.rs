//! Upkeep: vacuuming this store's tables when autovacuum does not.
//!
//! Every change of a run leaves a dead version of its row, and of its entries in the queue's
//! index, until a vacuum removes them. Autovacuum does that by itself where it is on (the
//! migrations tune it for the busy tables). Where it is off, for the server or for a table,
//! the dead versions pile up: after a burst of 100,000 runs every claim walked some 2,500 index
//! pages of them, and a resume one at a time took three times as long. So [`run`] reads the
//! statistics of the store's tables ([`TABLES`]; not others that share its schema) and vacuums
//! and analyzes those that autovacuum leaves alone once enough of their rows changed ([`due`]);
//! where autovacuum is on, it only reads.

use deadpool_postgres::Client;
use waitpoint_storage::{Result, Upkeep};

use crate::map_error;
use crate::rows::column;

/// Changed rows a table takes before it is vacuumed, however small.
const MIN_CHANGED: i64 = 1_000;
/// The share of its live rows a table's changed rows must also reach (a tenth).
const CHANGED_SHARE: i64 = 10;

/// The store's tables, as the migrations make them.
pub const TABLES: [&str; 10] = [
    "environments",
    "event_batches",
    "run_journal",
    "run_tags",
    "run_waits",
    "runs",
    "waitpoint_tags",
    "waitpoints",
    "webhooks",
    "workers",
];

/// Each of the tables `$1` in the store's schema (quoted, with its schema), its live rows, its
/// dead rows, the rows changed since it was last analyzed, whether autovacuum is on for the
/// server, and the table's storage options (where `autovacuum_enabled` may turn it off for the
/// table).
const TABLE_STATISTICS: &str = "
    SELECT format('%I.%I', s.schemaname, s.relname), s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
           current_setting('autovacuum') = 'on', COALESCE(c.reloptions, '{}')
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema() AND s.relname = ANY ($1)
    ORDER BY s.relname";

/// What the statistics say of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TableStatistics {
    live: i64,
    dead: i64,
    changed_since_analyze: i64,
    /// Whether autovacuum is on for the server.
    autovacuum: bool,
    /// The table's storage options, as `name=value`.
    options: Vec<String>,
}

/// Whether a table is to be vacuumed now: autovacuum leaves it alone (off for the server, or
/// `autovacuum_enabled` off for the table), and its dead rows, or its rows changed since it was
/// last analyzed, reach [`MIN_CHANGED`] and a tenth of its live rows.
fn due(table: &TableStatistics) -> bool {
    let disabled_here = table.options.iter().any(|option| {
        option.split_once('=').is_some_and(|(name, value)| {
            name == "autovacuum_enabled" && matches!(value.to_ascii_lowercase().as_str(), "false" | "off" | "no" | "0")
        })
    });
    if table.autovacuum && !disabled_here {
        return false;
    }
    let threshold = MIN_CHANGED.max(table.live / CHANGED_SHARE);
    table.dead >= threshold || table.changed_since_analyze >= threshold
}

/// Vacuums and analyzes the store's tables that are [`due`], one after the other, on `client`
/// (outside any transaction, as `VACUUM` must be), skipping one another node is vacuuming.
pub(crate) async fn run(client: &Client) -> Result<Upkeep> {
    let statement = client.prepare_cached(TABLE_STATISTICS).await.map_err(map_error)?;
    let tables: &[&str] = &TABLES;
    let mut upkeep = Upkeep::default();
    for row in client.query(&statement, &[&tables]).await.map_err(map_error)? {
        let name: String = column(&row, 0)?;
        let table = TableStatistics {
            live: column(&row, 1)?,
            dead: column(&row, 2)?,
            changed_since_analyze: column(&row, 3)?,
            autovacuum: column(&row, 4)?,
            options: column(&row, 5)?,
        };
        if due(&table) {
            // The name comes quoted from the catalog: `format('%I.%I')` above. A table another
            // node is vacuuming is skipped: that one does it.
            client.batch_execute(&format!("VACUUM (ANALYZE, SKIP_LOCKED) {name}")).await.map_err(map_error)?;
            upkeep.vacuumed.push(name);
        }
    }
    Ok(upkeep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(live: i64, dead: i64, changed: i64, autovacuum: bool, options: &[&str]) -> TableStatistics {
        TableStatistics {
            live,
            dead,
            changed_since_analyze: changed,
            autovacuum,
            options: options.iter().map(|option| (*option).to_owned()).collect(),
        }
    }

    #[test]
    fn a_table_is_vacuumed_only_where_autovacuum_leaves_it_alone() {
        assert!(!due(&table(0, 50_000, 0, true, &[])), "autovacuum's work");
        assert!(!due(&table(0, 50_000, 0, true, &["autovacuum_vacuum_scale_factor=0.01"])));
        assert!(due(&table(0, 50_000, 0, false, &[])), "off for the server");
        assert!(due(&table(0, 50_000, 0, true, &["autovacuum_enabled=false"])), "off for the table");
        assert!(due(&table(0, 50_000, 0, true, &["autovacuum_enabled=OFF"])));
        assert!(!due(&table(0, 50_000, 0, true, &["autovacuum_enabled=true"])));
    }

    #[test]
    fn a_table_is_vacuumed_once_enough_of_its_rows_changed() {
        assert!(!due(&table(0, 999, 999, false, &[])), "too few");
        assert!(due(&table(0, 1_000, 0, false, &[])), "dead rows");
        assert!(due(&table(0, 0, 1_000, false, &[])), "rows inserted since the last analyze");
        assert!(!due(&table(100_000, 9_999, 0, false, &[])), "under a tenth of a large table");
        assert!(due(&table(100_000, 10_000, 0, false, &[])));
    }
}
