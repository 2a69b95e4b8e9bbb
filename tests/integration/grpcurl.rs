//! The running binary as a generic gRPC client sees it: `grpcurl` lists and describes
//! the services through reflection (grpcurl speaks the v1alpha protocol), calls
//! `GetTile` from JSON and checks health.

use std::path::PathBuf;

use tokio::process::Command;

use crate::harness::Server;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The grpcurl executable: `$TESSERA_GRPCURL`, else `.venv/bin/grpcurl` in the crate.
/// Fails (never skips) when it is missing.
fn grpcurl_path() -> PathBuf {
    let path = std::env::var_os("TESSERA_GRPCURL")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/grpcurl"), PathBuf::from);
    assert!(
        path.is_file(),
        "grpcurl not found at {}: run `make venv` (or set TESSERA_GRPCURL to a grpcurl executable)",
        path.display()
    );
    path
}

/// Runs `grpcurl -plaintext -max-time 60 <args>` and returns its stdout; fails on a
/// non-zero exit, showing stderr.
async fn grpcurl(args: &[&str]) -> String {
    let path = grpcurl_path();
    let output = Command::new(&path)
        .args(["-plaintext", "-max-time", "60"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run `make venv`", path.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The value of the first string field `key` in grpcurl's JSON output. The values this
/// module reads (MIME types, base64, enum names) contain no escapes.
fn json_string(json: &str, key: &str) -> Option<String> {
    let quoted = format!("\"{key}\"");
    let after_key = &json[json.find(&quoted)? + quoted.len()..];
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let value = after_colon.strip_prefix('"')?;
    Some(value[..value.find('"')?].to_owned())
}

/// Decodes standard base64 (with or without padding), as protobuf JSON writes `bytes`.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Result<u32, String> {
        Ok(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(format!("invalid base64 character {:?}", char::from(c))),
        }))
    }
    let digits = text.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 {
        return Err(format!("invalid base64 length {}", digits.len()));
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= sextet(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[test]
fn the_base64_decoder_decodes_padded_and_unpadded_text() {
    assert_eq!(base64_decode("").unwrap(), b"");
    assert_eq!(base64_decode("Zg==").unwrap(), b"f");
    assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
    assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
    assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
    assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), PNG_SIGNATURE);
    assert!(base64_decode("Zm9v!").is_err());
}

#[tokio::test]
async fn grpcurl_lists_the_tile_and_health_services_through_reflection() {
    let server = Server::start();
    let services = grpcurl(&[&server.address, "list"]).await;
    let names: Vec<&str> = services.lines().map(str::trim).collect();
    assert!(names.contains(&"tessera.v1.TileService"), "list output: {services}");
    assert!(names.contains(&"grpc.health.v1.Health"), "list output: {services}");
}

#[tokio::test]
async fn grpcurl_describes_the_tile_service_methods() {
    let server = Server::start();
    let description = grpcurl(&[&server.address, "describe", "tessera.v1.TileService"]).await;
    for method in ["rpc GetTile", "rpc GetTiles", "rpc StreamTiles", "rpc GetAssetInfo"] {
        assert!(description.contains(method), "no {method:?} in: {description}");
    }
}

#[tokio::test]
async fn grpcurl_gets_a_png_tile_from_json() {
    let server = Server::start();
    let request = r#"{"z":12,"x":1194,"y":1551,"assets":["utm_rgb_00.tif"]}"#;
    let response = grpcurl(&["-d", request, &server.address, "tessera.v1.TileService/GetTile"]).await;
    let content_type = json_string(&response, "contentType");
    assert_eq!(content_type.as_deref(), Some("image/png"), "response: {response}");
    let data = json_string(&response, "data").unwrap_or_else(|| panic!("no data field in: {response}"));
    let png = base64_decode(&data).unwrap_or_else(|e| panic!("data is not base64 ({e}): {data}"));
    assert!(
        png.starts_with(PNG_SIGNATURE),
        "data does not start with the PNG signature: {:?}",
        &png[..png.len().min(16)]
    );
    assert!(png.len() > 100, "a {}-byte PNG is too small for a 256 x 256 tile", png.len());
}

#[tokio::test]
async fn grpcurl_health_check_reports_serving() {
    let server = Server::start();
    let response = grpcurl(&[&server.address, "grpc.health.v1.Health/Check"]).await;
    assert_eq!(json_string(&response, "status").as_deref(), Some("SERVING"), "response: {response}");
    let response = grpcurl(&[
        "-d",
        r#"{"service":"tessera.v1.TileService"}"#,
        &server.address,
        "grpc.health.v1.Health/Check",
    ])
    .await;
    assert_eq!(json_string(&response, "status").as_deref(), Some("SERVING"), "response: {response}");
}
