//! policyd: the C eBPF endpoint programs (`bpf/`), their map ABI, the loader and the
//! generation writer that swaps a compiled bundle into the kernel atomically, and the agent
//! that drives them.
//!
//! Architecture invariant: a packet reads the live generation once (`plc_live_v1`) and then
//! only that generation's maps; the writer fills a fresh generation beside the live one and
//! flips that single value, so no packet ever sees two policy revisions.

pub mod agent;
pub mod api;
pub mod cni;
pub mod datapath;
pub mod generation;
pub mod loader;
pub mod preflight;
pub(crate) mod sys;

pub use generation::{GenerationError, GenerationSpec, Tables};
pub use loader::{Datapath, DatapathError, LoadOptions, Swap};
pub use sys::monotonic_ns;
