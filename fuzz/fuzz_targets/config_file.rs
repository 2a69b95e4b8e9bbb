//! Fuzzes the config file of `tessera serve --config`: the input is the file's bytes,
//! parsed by `FileConfig::parse` exactly as the server parses the file, and its
//! `[[layers]]` tables checked by `layers::validate` (which reads nothing). Neither may
//! panic, and an accepted layer has a name a request can carry.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tessera::config::FileConfig;
use tessera::layers::{MAX_LAYER_NAME_LEN, validate};

fuzz_target!(|data: &[u8]| {
    // The server reads the file as UTF-8 text; other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = match FileConfig::parse(Path::new("fuzz.toml"), text) {
        Ok(file) => file,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let Ok(specs) = validate(file.layers(), Path::new("/data")) else { return };
    for spec in &specs {
        assert!(
            (1..=MAX_LAYER_NAME_LEN).contains(&spec.name.len())
                && spec.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
            "layer name {:?} accepted",
            spec.name
        );
    }
});
