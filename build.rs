//! Link-time layout of `fc-host`, for a small resident set at start
//! (docs/performance.md has the measurements):
//! - `-no-pie`: a position-dependent executable has no dynamic relocations,
//!   so the loader neither reads a 900 KiB relocation table nor writes (and
//!   so copies) 600 KiB of relocated read-only data at every start;
//! - the functions a run executes, placed together (`hot-symbols.txt`, made
//!   by `benches/orderfile.sh`): the kernel maps code 64 KiB around each page
//!   fault, so hot functions scattered over 22 MiB of text would make most of
//!   it resident. A name the build no longer has is skipped, never an error.
//!
//! Both need the default linker of this target, rust-lld.

fn main() {
    println!("cargo:rerun-if-changed=host/cli/hot-symbols.txt");
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    let order = concat!(env!("CARGO_MANIFEST_DIR"), "/host/cli/hot-symbols.txt");
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={order}");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
