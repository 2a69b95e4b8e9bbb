//! The running binary as a generic gRPC client sees it: every command of the README's
//! grpcurl cookbook (list and describe through reflection, which grpcurl 1.8 speaks as
//! v1alpha; GetTile and GetTiles from JSON; saving the image; asset info; health) runs
//! against a live server and prints what the README says it prints, so the docs cannot
//! rot.

use std::path::PathBuf;

use tokio::process::Command;

use crate::harness::{Server, ServerOptions};

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

/// The README's grpcurl cookbook: each command with the texts the `# expect:` lines
/// before it say it must print.
fn cookbook() -> Vec<(Vec<String>, String)> {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("<!-- grpcurl-cookbook -->").expect("no cookbook marker in the README");
    let block = readme[start..].split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).unwrap();
    let (mut out, mut expect, mut pending) = (Vec::new(), Vec::new(), String::new());
    for line in block.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("# expect: ") {
            expect.push(text.to_owned());
        } else if let Some(part) = line.strip_suffix('\\') {
            pending.push_str(part);
        } else if !line.is_empty() && !line.starts_with('#') {
            pending.push_str(line);
            out.push((std::mem::take(&mut expect), std::mem::take(&mut pending)));
        }
    }
    out
}

#[tokio::test]
async fn every_command_of_the_readme_cookbook_runs_and_prints_what_it_promises() {
    // As `make run` serves: with the demo layer.
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo.toml");
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), demo.display().to_string()],
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let commands = cookbook();
    assert!(commands.len() >= 9, "the cookbook parsed into only {} commands", commands.len());
    let grpcurl = grpcurl_path().display().to_string();
    for (expect, command) in &commands {
        let line = command.replace(".venv/bin/grpcurl", &grpcurl).replace("127.0.0.1:50051", &server.address);
        let output = Command::new("bash")
            .args(["-o", "pipefail", "-c", &line])
            .current_dir(dir.path())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{command}\nfailed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        for text in expect {
            assert!(stdout.contains(text.as_str()), "{command}\ndid not print {text:?}:\n{stdout}");
        }
    }
    // The command that saves the image wrote a 256 x 256 PNG.
    let png = std::fs::read(dir.path().join("tile.png")).expect("no tile.png was written");
    assert!(png.starts_with(PNG_SIGNATURE));
    assert_eq!(&png[12..16], b"IHDR");
    let size = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!(size, (256, 256));
}
