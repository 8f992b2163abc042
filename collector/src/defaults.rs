//! Defaults more than one module needs. They sit at the bottom of the
//! layering, so `settings` (which uses `alerts`) and `alerts` (which builds
//! its default `public_url` from the HTTP address) both depend downward.

/// Default HTTP address: loopback only.
pub(crate) const DEFAULT_HTTP: &str = "127.0.0.1:7717";
