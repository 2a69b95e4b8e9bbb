//! The Python example client (`examples/python/client.py`, stubs generated from proto/
//! with grpcio-tools) against a live server: the PNGs it writes decode to the expected
//! size, a tile outside every asset is reported per item, and an unreachable server is
//! exit code 2.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::harness::{Server, venv_python as python};

async fn run_client(server: &str, out: &Path, tiles: &[&str]) -> (i32, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/python/client.py");
    let output = Command::new(python())
        .arg(script)
        .args(["--server", server, "--connect-timeout", "2", "--asset", "utm_rgb_00.tif", "--out"])
        .arg(out)
        .args(tiles)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[tokio::test]
async fn the_python_example_fetches_a_tile_and_a_batch() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run_client(&server.address, dir.path(), &["12/1194/1551", "13/2388/3102"]).await;
    assert_eq!(code, 0, "{text}");
    for name in ["single_12_1194_1551.png", "batch_12_1194_1551.png", "batch_13_2388_3102.png"] {
        assert_eq!(png_size(&dir.path().join(name)), (256, 256), "{name}");
    }
    assert!(text.contains("GetTiles [1] 13/2388/3102: 256x256"), "{text}");

    // A tile outside every asset fails alone, as NOT_FOUND (5), and the exit code says so.
    let (code, text) = run_client(&server.address, dir.path(), &["12/1194/1551", "20/0/0"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("GetTiles [1] 20/0/0: error 5: tile 20/0/0 of WebMercatorQuad is outside"),
        "{text}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let (code, text) = run_client(&closed, dir.path(), &["12/1194/1551"]).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(&format!("cannot reach {closed}")), "{text}");
}
