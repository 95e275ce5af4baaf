//! The environment variables the SDK and the `waitpoint` CLI read, read in one place.
//!
//! Trigger.dev's names work too, so a shell set up for the official SDK works unchanged.

/// The API's URL: `WAITPOINT_API_URL`, else `TRIGGER_API_URL`, else [`DEFAULT_API_URL`].
pub fn api_url() -> String {
    api_url_from(lookup)
}

/// The secret key: `WAITPOINT_SECRET_KEY`, else `TRIGGER_SECRET_KEY`; `None` when neither is
/// set (or both are blank).
pub fn secret_key() -> Option<String> {
    secret_key_from(lookup)
}

/// This worker process's instance name: `WAITPOINT_WORKER_INSTANCE` (see
/// [`WorkerConfig::instance`](crate::WorkerConfig::instance)).
pub fn worker_instance() -> Option<String> {
    lookup("WAITPOINT_WORKER_INSTANCE")
}

/// Where a local `waitpoint serve` listens.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:3030";

/// The variable, unless it is unset or blank.
fn lookup(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

pub(crate) fn api_url_from(lookup: impl Fn(&str) -> Option<String>) -> String {
    lookup("WAITPOINT_API_URL").or_else(|| lookup("TRIGGER_API_URL")).unwrap_or_else(|| DEFAULT_API_URL.to_owned())
}

pub(crate) fn secret_key_from(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    lookup("WAITPOINT_SECRET_KEY").or_else(|| lookup("TRIGGER_SECRET_KEY"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn waitpoint_names_win_over_trigger_names_and_the_url_has_a_default() {
        assert_eq!(api_url_from(from(&[])), "http://127.0.0.1:3030");
        assert_eq!(api_url_from(from(&[("TRIGGER_API_URL", "http://t")])), "http://t");
        assert_eq!(
            api_url_from(from(&[("TRIGGER_API_URL", "http://t"), ("WAITPOINT_API_URL", "http://w")])),
            "http://w"
        );
        assert_eq!(secret_key_from(from(&[])), None);
        assert_eq!(secret_key_from(from(&[("TRIGGER_SECRET_KEY", "tr_dev_t")])).as_deref(), Some("tr_dev_t"));
        let both = from(&[("TRIGGER_SECRET_KEY", "tr_dev_t"), ("WAITPOINT_SECRET_KEY", "tr_dev_w")]);
        assert_eq!(secret_key_from(both).as_deref(), Some("tr_dev_w"));
    }
}
