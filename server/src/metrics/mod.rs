//! What the server counts and how `/metrics` shows it: connection counters
//! (`stats`), and the Prometheus text exposition (`exposition`, format 0.0.4,
//! written by hand: a few families need no crate) of them and of the reloader's
//! status (`families`).

mod exposition;
mod families;
mod stats;

pub(crate) use families::render;
pub(crate) use stats::Stats;
