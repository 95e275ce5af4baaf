//! Numbered statement arguments for queries built at run time.

/// Numbered statement arguments.
pub(crate) struct Args(pub(crate) Vec<rusqlite::types::Value>);

impl Args {
    /// Adds an argument and returns its placeholder.
    pub(crate) fn push(&mut self, value: impl Into<rusqlite::types::Value>) -> String {
        self.0.push(value.into());
        format!("?{}", self.0.len())
    }
}
