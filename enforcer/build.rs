//! Compiles the C eBPF programs in `bpf/` with clang into `$OUT_DIR`.

use std::path::PathBuf;
use std::process::Command;

/// The objects to build: one per entry C file.
const PROGRAMS: &[&str] = &["plc_ep"];

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed=bpf");
    for entry in std::fs::read_dir("bpf/lib").expect("bpf/lib exists") {
        let path = entry.expect("readable bpf/lib").path();
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // Debian keeps asm/types.h under the multiarch directory.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_owned());
    for name in PROGRAMS {
        let src = format!("bpf/{name}.bpf.c");
        println!("cargo:rerun-if-changed={src}");
        let obj = out.join(format!("{name}.bpf.o"));
        let output = Command::new(&clang)
            .args([
                "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-c", &src,
            ])
            .arg(format!("-I/usr/include/{arch}-linux-gnu"))
            .arg("-o")
            .arg(&obj)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `{clang}` (install clang to build the datapath): {e}")
            });
        if !output.status.success() {
            panic!(
                "clang failed on {src}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
