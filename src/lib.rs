//! Navigator: a Kubernetes operator that runs a cloud service provider's partner business as resources.
//!
//! The binary (`src/main.rs`) only parses the command line; everything else lives here where tests reach it.
pub mod api;
pub mod billing;
pub mod controller;
pub mod endpoint;
pub mod export;
pub mod logging;
pub mod org;
pub mod simulator;
