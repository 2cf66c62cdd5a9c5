//! The runtime every kind runs on, naming no kind: the one generic reconciler ([`reconciler`]) with its
//! conditions, errors, requeues and backoff; a second writer's share of a kind's status ([`part`]); watches
//! and controllers ([`watch`]); the crash-safe create protocol ([`create_protocol`]); what reconciles share
//! ([`context`]); the clock, leader election, metrics and the health and metrics server.

pub mod clock;
pub mod conditions;
pub mod context;
pub mod create_protocol;
pub mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod part;
pub mod reconciler;
pub mod schedule;
pub mod server;
pub mod shard;
pub mod watch;
