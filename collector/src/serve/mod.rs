//! The HTTP side (DESIGN §7): the page, the JSON API, `/metrics` and the
//! live feed, on one `tiny_http` server. Reads only; the database is reached
//! through [`crate::store::read`].
//!
//! Where a request goes: [`http`] (worker threads) → [`gate`] (Host, method,
//! token; every answer gets the security headers) → the page's files, or
//! [`metrics`] (`/api/health`, `/metrics`), or [`api`] (the database routes),
//! or [`ws`] (`/ws`: checks the Origin, upgrades, and runs the client on a
//! thread of its own), or [`approvals`] (remote approval's list and
//! decisions, the one place a `POST` is served). [`json`] writes events as JSON for both [`api`] and
//! [`ws`]; [`fd`] finds the sockets `tiny_http` does not expose.
//!
//! [`auth`] holds the page's credentials (one-time codes, page tokens,
//! WebSocket tickets, the token followed through rotations); [`sign_in`]
//! is its `POST` routes.
//!
//! Imports go one way: `http` uses the rest; `ws`, `api` and `sign_in` use
//! `gate`, `json`, `fd`, `auth` and the store (`api` also builds timelines
//! with `crate::timeline`); `gate` uses `auth`; `auth`,
//! `json` and `fd` use none of them.
//! [`backfill`] is a thread of its own beside the server: it feeds the hub
//! the rows other processes (an import) committed, for [`ws`].

pub(crate) mod alerts;
pub(crate) mod api;
pub(crate) mod approvals;
pub(crate) mod auth;
pub(crate) mod backfill;
pub(crate) mod budgets;
pub(crate) mod fd;
pub(crate) mod gate;
pub(crate) mod http;
pub(crate) mod json;
pub(crate) mod metrics;
pub(crate) mod sign_in;
pub(crate) mod ws;
