//! policyd's datapath: the C eBPF endpoint programs (`bpf/`), their map ABI, the loader and
//! the generation writer that swaps a compiled bundle into the kernel atomically.
//!
//! Architecture invariant: a packet reads the live generation once (`plc_live_v1`) and then
//! only that generation's maps; the writer fills a fresh generation beside the live one and
//! flips that single value, so no packet ever sees two policy revisions.

pub mod api;
pub mod cni;
pub mod datapath;
pub mod generation;
pub mod loader;
mod sys;

pub use generation::{GenerationError, GenerationSpec, Tables};
pub use loader::{Datapath, DatapathError, LoadOptions, Swap};
