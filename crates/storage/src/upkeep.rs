//! Upkeep: what a backend tidies in its database that the database does not tidy itself
//! ([`Store::upkeep`]).
//!
//! [`Store::upkeep`]: crate::Store::upkeep

/// What one call of [`Store::upkeep`](crate::Store::upkeep) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// The tables vacuumed and analyzed, by name.
    pub vacuumed: Vec<String>,
}
