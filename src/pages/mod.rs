//! larder's own pages: what it answers itself instead of forwarding — its status
//! page, `/metrics`, `/health`, the PAC file, and `PURGE`.
//!
//! A request reaches these when it is in origin form (`GET /metrics` with larder's own
//! address in Host, as a browser or Prometheus sends it when pointed straight at
//! larder) or in absolute form naming one of larder's own listening addresses, or
//! when its method is PURGE. [`route`] decides what to answer as a value; the
//! connection code carries it out.

pub mod metrics;
pub mod pac;
pub mod small;
pub mod status;
pub mod text;
