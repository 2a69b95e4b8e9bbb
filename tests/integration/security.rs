//! TLS, mTLS and bearer tokens at the front door, and what a worker process is allowed
//! to be: certificates are made here with rcgen, the server and `tessera get` are the
//! real binaries, and the worker's limits are read back from `/proc`.

use std::{
    path::Path,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tessera::{
    client::{ConnectArgs, connect_with},
    pb::v1,
};
use tonic::Code;

use crate::harness::{self, BIN, Server, ServerOptions, tile_request};

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM
/// files in `dir`.
fn make_certificates(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write("ca.pem", ca.pem());
    for (name, sans) in [
        ("server", vec!["localhost".to_owned(), "127.0.0.1".to_owned()]),
        ("client", vec!["caller.example".to_owned()]),
    ] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(sans).unwrap().signed_by(&key, &ca).unwrap();
        write(&format!("{name}.pem"), cert.pem());
        write(&format!("{name}.key"), key.serialize_pem());
    }
    // A second CA whose client certificate the server must not accept.
    let rogue_key = KeyPair::generate().unwrap();
    let mut rogue_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    rogue_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let rogue = CertifiedIssuer::self_signed(rogue_params, rogue_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["rogue.example".to_owned()]).unwrap().signed_by(&key, &rogue).unwrap();
    write("rogue.pem", cert.pem());
    write("rogue.key", key.serialize_pem());
}

fn connect_args(server: &Server, dir: &Path) -> ConnectArgs {
    ConnectArgs {
        server: format!("https://{}", server.address),
        ca_cert: Some(dir.join("ca.pem")),
        client_cert: None,
        client_key: None,
        tls_server_name: None,
        token_file: None,
    }
}

/// A server started with `--auth-token-file` holding `tokens`, plus `args` and `env`.
fn token_server(dir: &Path, tokens: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let file = dir.join("tokens");
    std::fs::write(&file, tokens).unwrap();
    let mut all = vec!["--auth-token-file".to_owned(), file.display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Server::start_with(ServerOptions { args: all, env, ..Default::default() })
}

/// Plaintext connection settings that send `token` (from a file, as `tessera get` would).
fn token_args(server: &Server, dir: &Path, token: Option<&str>) -> ConnectArgs {
    let token_file = token.map(|t| {
        let path = dir.join(format!("client-{t}"));
        std::fs::write(&path, format!("{t}\n")).unwrap();
        path
    });
    ConnectArgs {
        server: server.url(),
        ca_cert: None,
        client_cert: None,
        client_key: None,
        tls_server_name: None,
        token_file,
    }
}

fn good_tile() -> v1::GetTileRequest {
    tile_request(12, 1194, 1551, &["utm_rgb_00.tif"])
}

/// The error of connecting (or of the first call, where the handshake fails late);
/// panics if the call succeeds.
async fn expect_refused(args: &ConnectArgs) -> String {
    match connect_with(args).await {
        Err(e) => format!("{e:?}"),
        Ok(mut client) => match client.get_tile(good_tile()).await {
            Ok(_) => panic!("the call succeeded"),
            Err(status) => format!("{status:?}"),
        },
    }
}

fn tls_server(dir: &Path, extra: &[&str]) -> Server {
    let mut args: Vec<String> = vec![
        "--tls-cert".into(),
        dir.join("server.pem").display().to_string(),
        "--tls-key".into(),
        dir.join("server.key").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Server::start_with(ServerOptions { args, ..Default::default() })
}

#[tokio::test]
async fn a_tls_server_refuses_plaintext_and_serves_tls_clients() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let server = tls_server(dir.path(), &[]);

    // Plaintext HTTP/2 to a TLS port: the call fails, nothing is served.
    let mut plain = connect_args(&server, dir.path());
    plain.server = format!("http://{}", server.address);
    plain.ca_cert = None;
    let why = expect_refused(&plain).await;
    assert!(why.contains("Unavailable") || why.contains("transport"), "{why}");

    // TLS against a CA that did not sign the server's certificate: refused by the client.
    let mut wrong_ca = connect_args(&server, dir.path());
    wrong_ca.ca_cert = Some(dir.path().join("rogue.pem"));
    let why = expect_refused(&wrong_ca).await;
    assert!(why.to_lowercase().contains("certificate") || why.contains("transport"), "{why}");

    let mut client = connect_with(&connect_args(&server, dir.path())).await.unwrap();
    let tile = client.get_tile(good_tile()).await.unwrap().into_inner();
    assert_eq!((tile.content_type.as_str(), tile.width, tile.height), ("image/png", 256, 256));
}

#[tokio::test]
async fn under_mtls_only_clients_with_a_certificate_from_the_ca_get_tiles() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let ca = dir.path().join("ca.pem").display().to_string();
    let server = tls_server(dir.path(), &["--tls-client-ca", &ca]);

    // No client certificate, then one from another CA: both refused.
    expect_refused(&connect_args(&server, dir.path())).await;

    let mut rogue = connect_args(&server, dir.path());
    rogue.client_cert = Some(dir.path().join("rogue.pem"));
    rogue.client_key = Some(dir.path().join("rogue.key"));
    expect_refused(&rogue).await;

    // `tessera get` with the client certificate writes the tile.
    let out = dir.path().join("tile.png");
    let status = Command::new(BIN)
        .args(["get", "--server", &format!("https://{}", server.address), "--ca-cert", &ca])
        .arg("--client-cert")
        .arg(dir.path().join("client.pem"))
        .arg("--client-key")
        .arg(dir.path().join("client.key"))
        .args(["--asset", "utm_rgb_00.tif", "12/1194/1551", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "tessera get over mTLS failed: {status}");
    let png = std::fs::read(&out).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));

    // The same without a certificate: a failed command that says it could not connect or call.
    let output = Command::new(BIN)
        .args(["get", "--server", &format!("https://{}", server.address), "--ca-cert", &ca])
        .args(["--asset", "utm_rgb_00.tif", "12/1194/1551", "-o"])
        .arg(dir.path().join("none.png"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!dir.path().join("none.png").exists());
}

#[tokio::test]
async fn bearer_tokens_are_checked_on_the_tile_api_but_not_on_health() {
    let dir = tempfile::tempdir().unwrap();
    let server = token_server(
        dir.path(),
        "# rotated monthly\nfirst-token\nsecond-token\n",
        &[],
        &[("TESSERA_AUTH_TOKEN", "env-token")],
    );
    let args = |token| token_args(&server, dir.path(), token);
    let status = connect_with(&args(None)).await.unwrap().get_tile(good_tile()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("authorization: Bearer <token>"), "{}", status.message());
    let status = connect_with(&args(Some("wrong"))).await.unwrap().get_tile(good_tile()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the bearer token is not accepted");
    for token in ["first-token", "second-token", "env-token"] {
        let tile = connect_with(&args(Some(token))).await.unwrap().get_tile(good_tile()).await.unwrap();
        assert_eq!(tile.get_ref().content_type, "image/png", "{token}");
    }
    // Probes need no token.
    let channel = tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(
        health.get_ref().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // The token never reaches a worker.
    for pid in server.worker_pids() {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(!String::from_utf8_lossy(&environ).contains("env-token"), "worker {pid} got the token");
    }
}

/// `/proc/PID/limits` as (name, soft) pairs.
fn limits(pid: u32) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| (l[..26].trim().to_owned(), l[26..].split_whitespace().next().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test]
async fn workers_run_hardened_with_a_minimal_environment() {
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--worker-max-open-files".into(),
            "200".into(),
            "--worker-memory-limit".into(),
            "3GiB".into(),
            "--worker-cpu-per-job".into(),
            "30s".into(),
            // S3 set up by flag and by variables: the front's business alone.
            "--allow-remote".into(),
            "s3://tessera-test/".into(),
            "--s3-region".into(),
            "eu-west-1".into(),
        ],
        env: vec![
            ("GDAL_HTTP_TIMEOUT".into(), "7".into()),
            ("DATABASE_PASSWORD".into(), "hunter2".into()),
            ("HOME".into(), "/root".into()),
            ("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "secret".into()),
        ],
        ..Default::default()
    });
    let mut client = server.client().await;
    client.get_tile(good_tile()).await.unwrap();
    let pids = server.wait_for_workers(2, Duration::from_secs(10));
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.lines().any(|l| l == "NoNewPrivs:\t1"), "worker {pid}: {status}");
        let limits = limits(pid);
        let soft = |name: &str| limits.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(soft("Max core file size"), "0");
        assert_eq!(soft("Max open files"), "200");
        assert_eq!(soft("Max address space"), (3u64 << 30).to_string());
        // Armed before the first job: CPU used so far (under a second) plus 30 s.
        let cpu: u64 = soft("Max cpu time").parse().unwrap_or_else(|_| panic!("no CPU limit on {pid}"));
        assert!((30..=32).contains(&cpu), "worker {pid}: cpu limit {cpu}");
        // Its own process group.
        let pgid: u32 = harness::stat_fields(pid).expect("the worker is running")[2].parse().unwrap();
        assert_eq!(pgid, pid, "worker {pid} is not its own process group leader");
        // Only the variables a worker needs.
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let names: Vec<String> = environ
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('=').map(|(k, _)| k.to_owned()))
            .collect();
        assert!(names.contains(&"GDAL_HTTP_TIMEOUT".to_owned()), "{names:?}");
        for forbidden in [
            "DATABASE_PASSWORD",
            "HOME",
            "PATH",
            "NO_COLOR",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
        ] {
            assert!(!names.contains(&forbidden.to_owned()), "worker {pid} inherited {forbidden}: {names:?}");
        }
    }
}

#[tokio::test]
async fn one_identified_caller_cannot_take_more_than_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let server = token_server(
        dir.path(),
        "alpha\nbeta\n",
        &["--max-in-flight-per-caller", "1"],
        &[("TESSERA_TEST_SLOW_READ", "utm_rgb_00=1500")],
    );
    let client = |token| {
        let args = token_args(&server, dir.path(), Some(token));
        async move { connect_with(&args).await }
    };
    let (mut alpha, mut alpha2, mut beta) =
        (client("alpha").await.unwrap(), client("alpha").await.unwrap(), client("beta").await.unwrap());
    let slow = tokio::spawn(async move { alpha.get_tile(good_tile()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The same caller again, while its first tile renders: refused, naming the flag.
    let mut other = good_tile();
    other.tile_size = 512;
    let status = alpha2.get_tile(other.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("--max-in-flight-per-caller"), "{}", status.message());
    // Another caller is not affected.
    beta.get_tile(other).await.expect("another caller was refused");
    slow.await.unwrap().expect("the first tile failed");
    // Once its tile is done, the first caller may go on.
    alpha2.get_tile(good_tile()).await.expect("the caller was still refused after its tile");
}

type TileClient = tessera::pb::v1::tile_service_client::TileServiceClient<tonic::transport::Channel>;

/// Records in `most` the largest number of worker reads seen at once in `busy_dir`
/// (the busy-dir test hook), until dropped.
async fn watch_busy(busy_dir: &Path, most: &AtomicUsize) {
    loop {
        let now = std::fs::read_dir(busy_dir).unwrap().count();
        most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Renders two slow tiles of different assets at once, on `a` and `b`, while watching
/// how many worker reads run at once.
async fn two_slow_tiles(busy_dir: &Path, mut a: TileClient, mut b: TileClient) -> usize {
    let most = AtomicUsize::new(0);
    let calls = async {
        let (x, y) = tokio::join!(
            a.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_00.tif"])),
            b.get_tile(tile_request(12, 1194, 1551, &["copy_of_utm_rgb_00.tif"])),
        );
        x.expect("first tile");
        y.expect("second tile");
    };
    tokio::select! {
        () = calls => {}
        () = watch_busy(busy_dir, &most) => unreachable!("the watcher never ends"),
    }
    most.load(Ordering::SeqCst)
}

#[tokio::test]
async fn one_connection_gets_at_most_max_concurrent_streams_calls_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    let server = Server::start_with(ServerOptions {
        workers: 2,
        args: vec!["--max-concurrent-streams".into(), "1".into()],
        env: vec![
            ("TESSERA_TEST_SLOW_READ".into(), "utm_rgb_00=500".into()),
            ("TESSERA_TEST_BUSY_DIR".into(), busy.display().to_string()),
        ],
        ..Default::default()
    });
    // Two calls on one connection: the second waits until the first's stream ends. (One
    // call first, so the client has the server's SETTINGS: a stream opened before them
    // is refused with REFUSED_STREAM, which clients may safely retry.)
    let mut one = server.client().await;
    one.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap();
    assert_eq!(two_slow_tiles(&busy, one.clone(), one).await, 1, "two calls ran at once on one connection");
    // On two connections both read at once: the limit is per connection.
    let (a, b) = (server.client().await, server.client().await);
    assert_eq!(two_slow_tiles(&busy, a, b).await, 2, "two connections did not read at once");
}

#[tokio::test]
async fn absolute_paths_under_another_allowed_root_are_served_and_nothing_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let dem = dir.path().join("dem");
    std::fs::create_dir(&dem).unwrap();
    std::fs::copy(crate::harness::fixtures().join("utm_rgb_00.tif"), dem.join("a.tif")).unwrap();
    std::fs::copy(crate::harness::fixtures().join("utm_rgb_00.tif"), dir.path().join("beside.tif")).unwrap();
    let server = Server::start_with(ServerOptions {
        args: vec!["--allow-local".into(), dem.display().to_string()],
        ..Default::default()
    });
    let mut client = server.client().await;
    let inside = dem.join("a.tif").canonicalize().unwrap().display().to_string();
    let tile = client.get_tile(tile_request(12, 1194, 1551, &[&inside])).await.unwrap().into_inner();
    let reference = client.get_tile(good_tile()).await.unwrap().into_inner();
    assert_eq!(tile.data, reference.data, "the same file under another root renders differently");
    let beside = dir.path().join("beside.tif").canonicalize().unwrap().display().to_string();
    let status = client.get_tile(tile_request(12, 1194, 1551, &[&beside])).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("under an --allow-local directory"), "{}", status.message());
}

#[tokio::test]
async fn a_job_that_spins_past_its_cpu_budget_kills_only_its_worker() {
    let server = Server::start_with(ServerOptions {
        args: vec!["--worker-cpu-per-job".into(), "1s".into(), "--read-timeout".into(), "30s".into()],
        env: vec![("TESSERA_TEST_CRASH_READ".into(), "utm_rgb_02=spin".into())],
        ..Default::default()
    });
    let mut client = server.client().await;
    let status = client.get_tile(tile_request(12, 1194, 1551, &["utm_rgb_02.tif"])).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("SIGXCPU"), "{}", status.message());
    // The read and its one retry, each on a worker that the kernel stopped at 1 s of CPU
    // (the 30 s read timeout never came into play).
    assert_eq!(server.metric("tessera_worker_crashes_total"), 2);
    assert_eq!(server.metric("tessera_worker_kills_total"), 0);
    client.get_tile(good_tile()).await.expect("the server stopped serving");
}
