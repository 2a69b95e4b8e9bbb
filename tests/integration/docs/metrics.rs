//! docs/telemetry.md against a running server: every metric of its table is on
//! `/metrics` (with its labels) and in the OTLP export, and nothing else is; every metric
//! another page names exists.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use tessera::pb::v1;
use tonic::Code;

use super::{
    assert_same,
    markdown::{self, code_spans, expand, read, section, table},
};
use crate::{
    harness::{self, Server, ServerOptions, tile_request},
    http_range,
    otlp::Receiver,
};

/// The metric names of the telemetry table: (Prometheus names with their labels, OTLP
/// names).
fn documented_metrics(page: &str) -> (BTreeMap<String, Vec<String>>, BTreeSet<String>) {
    let (mut prometheus, mut otlp) = (BTreeMap::new(), BTreeSet::new());
    for row in table(section(page, "Metrics")) {
        for span in code_spans(&row[0]).iter().filter(|s| s.starts_with("tessera_")) {
            prometheus.extend(expand(span));
        }
        for span in code_spans(&row[1]).iter().filter(|s| s.starts_with("tessera.")) {
            otlp.extend(expand(span).into_iter().map(|(name, _)| name));
        }
    }
    (prometheus, otlp)
}

/// `/metrics` as names (from `# TYPE`) and, per sample name, the label keys of its samples.
fn exported(text: &str) -> (BTreeSet<String>, BTreeMap<String, BTreeSet<Vec<String>>>) {
    let mut names = BTreeSet::new();
    let mut samples: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.insert(rest.split(' ').next().unwrap().to_owned());
        } else if line.starts_with("tessera_") {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (
                    name,
                    labels
                        .trim_end_matches('}')
                        .split(',')
                        .map(|l| l.split('=').next().unwrap().to_owned())
                        .collect(),
                ),
                None => (series, Vec::new()),
            };
            samples.entry(name.to_owned()).or_default().insert(labels);
        }
    }
    (names, samples)
}

#[tokio::test]
async fn the_telemetry_page_lists_every_exported_metric_and_only_those() {
    let (receiver, otlp_addr) = Receiver::start().await;
    let (origin, _) = http_range::serve(harness::fixtures().to_path_buf()).await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp_addr}")),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".to_owned()),
        ("OTEL_TRACES_EXPORTER", "none".to_owned()),
    ];
    let server = Server::start_with(ServerOptions {
        env: env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        args: ["--allow-remote", &format!("{origin}/"), "--tile-cache-size", "16MiB"]
            .map(str::to_owned)
            .to_vec(),
        ..ServerOptions::default()
    });
    // A tile twice (the second from the tile cache), a point, and a remote asset the
    // origin does not have: every labelled series gets its first event.
    let mut client = server.client().await;
    for _ in 0..2 {
        client.get_tile(tile_request(12, 1194, 1551, &harness::UTM[..1])).await.unwrap();
    }
    let point = v1::GetPointRequest {
        assets: vec![harness::UTM[0].to_owned()],
        lon: -75.03,
        lat: 39.96,
        ..Default::default()
    };
    client.get_point(point).await.unwrap();
    let missing = format!("{origin}/no_such_asset.tif");
    let status = client.get_tile(tile_request(12, 1194, 1551, &[missing.as_str()])).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let page = read("docs/telemetry.md");
    let (prometheus, otlp) = documented_metrics(&page);
    let (names, samples) = exported(&server.metrics_text());
    assert_same("Prometheus metrics", &prometheus.keys().cloned().collect(), &names);
    for (name, labels) in &prometheus {
        let mut want = labels.clone();
        want.sort();
        for mut got in samples.get(name).cloned().unwrap_or_default() {
            got.sort();
            assert_eq!(got, want, "the labels of {name}");
        }
    }
    // Every documented metric elsewhere in the docs is one of these.
    for page in markdown::pages() {
        for span in code_spans(&read(&page)).iter().filter(|s| s.starts_with("tessera_")) {
            for (name, _) in expand(span) {
                let known = match name.split_once('*') {
                    Some((prefix, _)) => names.iter().any(|n| n.starts_with(prefix)),
                    None => names.contains(&name),
                };
                assert!(known, "{page} names {name}, which /metrics does not have");
            }
        }
    }

    // OTLP: wait for every documented name, then one more export for any other.
    let until = Instant::now() + Duration::from_secs(15);
    while !otlp.is_subset(&receiver.metric_names()) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_same("OTLP metrics", &otlp, &receiver.metric_names());
}
