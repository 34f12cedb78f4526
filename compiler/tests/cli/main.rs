//! Integration tests: run the built `policyc` on the fixtures under `testdata/` and snapshot it.

mod check;
mod compile;
mod diff;
mod examples;
mod matrix;
mod trace;
mod util;
