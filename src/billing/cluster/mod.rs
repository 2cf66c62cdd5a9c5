//! Billing's work against the cluster and the endpoints, beside the pure rules of [`crate::billing`]:
//! reading usage from the endpoints ([`usage`], concurrently and bounded), issuing each closed period's
//! invoices ([`invoicing`]), and the current-period and contract views ([`views`]).

pub mod invoicing;
pub mod usage;
pub mod views;
