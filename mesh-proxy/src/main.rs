use std::process::ExitCode;

use clap::Parser;

/// Each request allocates and frees many small buffers (header maps, body
/// chunks, TLS records, futures); mimalloc's per-thread free lists make that
/// cheaper than glibc's malloc, which took a tenth of the proxy's user CPU
/// under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match mesh_proxy::run(mesh_proxy::Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
