//! Generates the gRPC and IPC code from `proto/` into `OUT_DIR`, plus the encoded
//! descriptor set of the public API that the reflection service serves.

use std::{env, io, path::PathBuf};

fn main() -> io::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    // The public API: client + server, and a descriptor set for reflection. The set
    // also holds google/rpc/error_details.proto (and, as imports, status, any and
    // duration), so reflection clients can decode the details our statuses carry; its
    // Rust types are tonic-types' own, so nothing is generated for google.rpc.
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("tessera_v1_descriptor.bin"))
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_protos(
            &["proto/tessera/v1/tile_service.proto", "proto/google/rpc/error_details.proto"],
            &["proto"],
        )?;

    // Front <-> worker messages: plain prost messages, no service.
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_protos(&["proto/tessera/worker/v1/worker.proto"], &["proto"])?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
