//! `tessera get` and `tessera info` as a person uses them: files written, the batch
//! progress summary, the table and JSON of `info`, and an exit code for each kind of
//! failure (2 usage, 3 unreachable, 4 refused by the server, 5 some tiles failed).

use std::process::{Command, Output};

use crate::harness::{BIN, Server};

fn tessera(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The binary under test is built with the fault-injection hooks and the tools and says
/// so; a release
/// build says "(features: none)" and names no hook (`make release-check`).
#[test]
fn the_version_line_names_the_builds_features() {
    let out = tessera(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tessera {} (features: test-hooks, tools)", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn get_and_info_write_what_they_say_and_exit_with_what_went_wrong() {
    let server = Server::start();
    let addr = server.address.as_str();
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).display().to_string();

    // One tile.
    let o =
        tessera(&["get", "--server", addr, "--asset", "utm_rgb_00.tif", "12/1194/1551", "-o", &out("t.png")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read(out("t.png")).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(stderr(&o).contains("image/png 256x256"), "{}", stderr(&o));

    // A batch with one tile outside every asset: the others are written, the failure is
    // named, the summary counts both, and the exit code is 5.
    std::fs::write(out("tiles.txt"), "# three tiles\n12/1194/1551\n\n13/2388/3102\n20/0/0\n").unwrap();
    let o = tessera(&[
        "get",
        "--server",
        addr,
        "--asset",
        "utm_rgb_00.tif",
        "--batch",
        &out("tiles.txt"),
        "-o",
        &out("batch"),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("20/0/0: NOT_FOUND: tile 20/0/0 of WebMercatorQuad is outside"), "{err}");
    assert!(err.contains("] 3/3 tiles, 1 failed: 2 written to"), "{err}");
    assert!(err.contains("tessera: 1 of 3 tiles failed"), "{err}");
    let mut written: Vec<String> = std::fs::read_dir(out("batch"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["12_1194_1551.png", "13_2388_3102.png"]);

    // A batch file with a bad line: usage error naming the line.
    std::fs::write(out("bad.txt"), "12/1194/1551\n12/x/1\n").unwrap();
    let o =
        tessera(&["get", "--server", addr, "--asset", "a.tif", "--batch", &out("bad.txt"), "-o", &out("b2")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.txt:2: tile '12/x/1' is not Z/X/Y"), "{}", stderr(&o));

    // info: a table, and JSON.
    let o = tessera(&["info", "--server", addr, "dem_4326.tif"]);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for row in [
        "crs             EPSG:4326",
        "size            512 x 512",
        "type            float32",
        "overviews       256x256",
    ] {
        assert!(table.contains(row), "no {row:?} in:\n{table}");
    }
    let o = tessera(&["info", "--json", "--server", addr, "dem_4326.tif"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("info --json is not JSON");
    assert_eq!((json["width"].as_u64(), json["dtype"].as_str()), (Some(512), Some("float32")));
    assert_eq!(json["bands"][0]["nodata"].as_f64(), Some(-9999.0));

    // Refused by the server: 4, with the gRPC code and the server's message.
    let o = tessera(&["info", "--server", addr, "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the server answered PERMISSION_DENIED: asset '/etc/passwd' is not allowed"),
        "{}",
        stderr(&o)
    );

    // A bad tile argument: 2, before any connection.
    let o = tessera(&["get", "--server", addr, "--asset", "a.tif", "12/1194", "-o", &out("x.png")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("tile '12/1194' is not Z/X/Y"), "{}", stderr(&o));

    // Nobody listening: 3, saying why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let o = tessera(&["get", "--server", &closed, "--asset", "a.tif", "1/0/0", "-o", &out("y.png")]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("cannot connect to http://{closed}")), "{}", stderr(&o));
    assert!(stderr(&o).contains("Connection refused"), "{}", stderr(&o));
}

#[test]
fn get_sends_the_warp_kernel_of_reproject_and_warps_with_nearest_without_it() {
    let server = Server::start();
    let addr = server.address.as_str();
    let dir = tempfile::tempdir().unwrap();
    let tile = |name: &str, kernels: &[&str]| {
        let path = dir.path().join(name).display().to_string();
        let mut args =
            vec!["get", "--server", addr, "--asset", "utm_rgb_00.tif", "12/1194/1551", "-o", &path];
        args.extend(kernels);
        let o = tessera(&args);
        assert_eq!(o.status.code(), Some(0), "{kernels:?}: {}", stderr(&o));
        std::fs::read(&path).unwrap()
    };
    let read_only = tile("read.npy", &["--resampling", "bilinear"]);
    let nearest_warp = tile("near.npy", &["--resampling", "bilinear", "--reproject", "nearest"]);
    let bilinear_warp = tile("both.npy", &["--resampling", "bilinear", "--reproject", "bilinear"]);
    assert_eq!(read_only, nearest_warp, "--resampling alone must warp with nearest, as rio-tiler");
    assert_ne!(bilinear_warp, nearest_warp, "--reproject bilinear must reach the warp");

    let o = tessera(&[
        "get",
        "--server",
        addr,
        "--asset",
        "a.tif",
        "--reproject",
        "bogus",
        "1/0/0",
        "-o",
        "x.png",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown --reproject kernel 'bogus'"), "{}", stderr(&o));
}

/// A `--tile-list` file in `dir`: the tiles `zxy`, each over the six UTM fixtures.
fn six_asset_list(dir: &std::path::Path, zxy: &[(u8, u32, u32)]) -> std::path::PathBuf {
    let assets: Vec<&str> = crate::harness::UTM.to_vec();
    let tiles: Vec<serde_json::Value> =
        zxy.iter().map(|(z, x, y)| serde_json::json!({"z": z, "x": x, "y": y, "assets": assets})).collect();
    let list = dir.join("tiles.json");
    std::fs::write(&list, serde_json::to_vec(&tiles).unwrap()).unwrap();
    list
}

/// The report `tessera bench [ARGS] --floor --tile-list LIST --repeat N` prints over the
/// fixtures (its last line), once it has exited 0.
fn floor_report(args: &[&str], list: &std::path::Path, repeat: &str) -> serde_json::Value {
    let (list, data) = (list.display().to_string(), crate::harness::fixtures().display().to_string());
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--floor", "--tile-list", &list, "--data-dir", &data, "--repeat", repeat]);
    let o = tessera(&all);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// `tessera bench --server ADDR --floor` (bench (i)): its client (whose calls leave in
/// one write, `client/one_write.rs`) gets every tile, and each served PNG is the same
/// bytes as the floor's, rendered in the bench's own process.
#[test]
fn the_benchs_floor_renders_the_bytes_the_server_serves() {
    let server = Server::with(&[], &[], 1);
    let dir = tempfile::tempdir().unwrap();
    let list =
        six_asset_list(dir.path(), &[(12, 1194, 1551), (13, 2388, 3102), (13, 2389, 3103), (14, 4777, 6205)]);
    let report = floor_report(&["--server", &server.address], &list, "2");
    for side in ["served", "floor"] {
        assert_eq!(report[side]["tiles"], 8, "{side}: {report}");
        assert_eq!(report[side]["errors"], 0, "{side}: {report}");
    }
    assert_eq!(report["same_png"], 8, "{report}");
}

/// `tessera bench --floor` on its own (bench (i) under load runs one a core): every
/// tile of every pass rendered, and `warm` counting the passes after the first alone.
#[test]
fn the_floor_alone_reports_its_passes_after_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let list = six_asset_list(dir.path(), &[(12, 1194, 1551), (13, 2388, 3102), (14, 4777, 6205)]);
    let report = floor_report(&[], &list, "3");
    assert_eq!(report["tiles"], 9, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["warm"]["tiles"], 6, "{report}");
    assert!(report["warm"]["wall_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["warm"]["cpu_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["warm"]["wall_s"].as_f64().unwrap() < report["wall_s"].as_f64().unwrap(),
        "the warm passes are part of the run: {report}"
    );
    // One pass: nothing after the first.
    let report = floor_report(&[], &list, "1");
    assert_eq!((report["tiles"].clone(), report["warm"]["tiles"].clone()), (3.into(), 0.into()), "{report}");
}
