//! The HTTP side (DESIGN §7): the page, the JSON API, `/metrics` and the
//! live feed, on one `tiny_http` server. Reads only; the database is reached
//! through [`crate::store::read`].
//!
//! Where a request goes: [`http`] (worker threads) → [`gate`] (Host, method,
//! token; every answer gets the security headers) → the page's files, or
//! [`metrics`] (`/api/health`, `/metrics`), or [`api`] (the database routes),
//! or [`ws`] (`/ws`: checks the Origin, upgrades, and runs the client on a
//! thread of its own). [`json`] writes events as JSON for both [`api`] and
//! [`ws`]; [`fd`] finds the sockets `tiny_http` does not expose.
//!
//! Imports go one way: `http` uses the rest; `ws` and `api` use `gate`,
//! `json`, `fd` and the store; `gate`, `json` and `fd` use none of them.

pub(crate) mod api;
pub(crate) mod budgets;
pub(crate) mod approvals;
pub(crate) mod fd;
pub(crate) mod gate;
pub(crate) mod http;
pub(crate) mod json;
pub(crate) mod metrics;
pub(crate) mod ws;
