//! Integration tests: every module runs against one real control plane (etcd, kube-apiserver,
//! kube-controller-manager built from the upstream Go modules), started once for this test binary by
//! `navigator_testenv::shared()` and stopped when the binary exits, however it exits.

mod support;
mod world;

mod api;
mod billing;

mod bench;
mod controlplane;
mod engine;
mod restarts;

mod access;
mod drift;
mod flux;
mod gitops;
mod in_cluster;
mod observability;
mod packaging;
mod request_tracker;
mod retry_after;
mod sharding;
mod support_requests;
mod tenants;

mod cloud_director;
mod vcd_conformance;
