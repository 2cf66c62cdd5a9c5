//! Navigator: a Kubernetes operator that runs a cloud service provider's partner business as resources.
//!
//! The binary (`src/main.rs`) only parses the command line; everything else lives here where tests reach it.
pub mod api;
pub mod billing;
pub mod cli;
pub mod controllers;
pub mod endpoint;
pub mod logging;
pub mod runtime;
pub mod simulator;
