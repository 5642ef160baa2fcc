//! Request collapsing, as the connections name it: the flights live in the cache
//! policy ([`crate::cache::policy::flights`]), which has the lifecycle.

pub use crate::cache::policy::flights::*;
