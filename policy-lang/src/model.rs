//! Typed Kubernetes and Cilium objects: policies and the workload inventory, with spans.

/// Every object of a tree that the compiler reads.
#[derive(Debug, Default)]
pub struct Tree {}
