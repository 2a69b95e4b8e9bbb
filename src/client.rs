//! The human tools that talk to a running server: `tessera get` (one tile to a file),
//! `tessera info` (describe an asset) and `tessera layer build-overview` (a layer's
//! low-zoom COG, [`overview`]); with the `tools` feature also `tessera bench` and
//! `tessera chaos`.

// The operator's tools (benchmark, chaos run, and the benchmark's floor and OTLP sink)
// are built only with the `tools` feature: the image that serves has `get` and `info`.
#[cfg(feature = "tools")]
mod bench;
#[cfg(feature = "tools")]
mod chaos;
#[cfg(feature = "tools")]
mod floor;
#[cfg(feature = "tools")]
mod one_write;
#[cfg(feature = "tools")]
mod otlp_sink;
pub mod overview;
#[cfg(feature = "tools")]
mod stac_bench;

use std::path::PathBuf;

#[cfg(feature = "tools")]
pub use bench::{BenchArgs, bench};
#[cfg(feature = "tools")]
pub use chaos::{ChaosArgs, chaos};
use clap::{Args, ValueEnum};
pub use overview::{BuildOverviewArgs, LayerArgs, LayerCommand, build_overview};

use crate::pb::v1::{self, tile_service_client::TileServiceClient};

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The tile coordinates are not `Z/X/Y`.
    #[error("{0}")]
    Usage(String),
    /// The server cannot be reached.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// The address.
        server: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The server answered with an error.
    #[error("the server answered {}: {}", code_name(.0.code()), .0.message())]
    Rpc(#[from] tonic::Status),
    /// Writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An overview could not be built or written (GDAL's message, or what the server
    /// sent that does not fit).
    #[error("{0}")]
    Overview(String),
    /// Some tiles of a batch failed (each was reported as it came).
    #[error("{failed} of {total} tiles failed")]
    Batch {
        /// Tiles that failed.
        failed: usize,
        /// Tiles asked for.
        total: usize,
    },
}

/// `INVALID_ARGUMENT` for `Code::InvalidArgument`, as gRPC names codes.
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl ClientError {
    /// The process exit code: 2 usage, 3 server unreachable, 4 the server refused the
    /// request, 5 some tiles of a batch failed, 1 a local error (writing the output).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Connect { .. } => 3,
            Self::Rpc(s) if s.code() == tonic::Code::Unavailable => 3,
            Self::Rpc(_) => 4,
            Self::Batch { .. } => 5,
            Self::Io(_) | Self::Overview(_) => 1,
        }
    }
}

/// Output encodings on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
    /// NumPy .npy.
    Npy,
}

/// How the human tools reach a server: address, TLS and bearer token.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Server address: http://host:port, https://host:port (TLS), or host:port.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "TESSERA_SERVER")]
    pub server: String,
    /// PEM CA certificate to trust for the server's certificate (implies TLS) [default: the system's roots for https://].
    #[arg(long, env = "TESSERA_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mTLS (with --client-key).
    #[arg(long, env = "TESSERA_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, env = "TESSERA_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Name to verify the server's certificate against [default: the host of --server].
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// File whose first line is the bearer token to send; the token can also come from
    /// the TESSERA_TOKEN variable.
    #[arg(long, env = "TESSERA_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// Sends `authorization: Bearer TOKEN` on every call when a token is set.
#[derive(Debug, Clone)]
pub struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A client of the tile API with TLS and the token as configured.
pub type Client = TileServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

/// Flags of `tessera get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Server, TLS and token.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Asset path on the server (repeat for a mosaic, in priority order).
    #[arg(long = "asset", required_unless_present = "layer", conflicts_with = "layer")]
    pub assets: Vec<String>,
    /// A server-side layer instead of assets (see `ListLayers`).
    #[arg(long)]
    pub layer: Option<String>,
    /// The tile as Z/X/Y (or --batch).
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    pub tile: Option<String>,
    /// A file of tiles, one Z/X/Y per line (`#` comments): fetched as GetTiles batches
    /// into the --output directory as Z_X_Y.<format>, with a progress line and a summary.
    #[arg(long)]
    pub batch: Option<PathBuf>,
    /// Output file (one tile) or directory (--batch, created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output format [default: from the output file's extension, else PNG].
    #[arg(long)]
    pub format: Option<FormatArg>,
    /// Tile matrix set.
    #[arg(long, default_value = "WebMercatorQuad")]
    pub tms: String,
    /// Tile size in pixels.
    #[arg(long, default_value_t = 256)]
    pub tile_size: u32,
    /// 1-based bands to return (repeatable).
    #[arg(long = "band")]
    pub bands: Vec<u32>,
    /// Read kernel (rio-tiler's resampling_method): nearest, bilinear, cubic,
    /// cubic_spline, lanczos, average, mode, rms, gauss. It picks the overview; the
    /// warp kernel is --reproject.
    #[arg(long, default_value = "nearest")]
    pub resampling: String,
    /// Warp kernel (rio-tiler's reproject_method): any but gauss, so also max, min, med,
    /// q1, q3, sum [default: nearest, whatever --resampling is, as in rio-tiler].
    #[arg(long)]
    pub reproject: Option<String>,
}

/// Flags of `tessera info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Server, TLS and token.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Asset path on the server.
    pub asset: String,
}

/// Whether a call failed before its request left this process. tonic's channel can hand
/// a request to an HTTP/2 connection that has already received the server's GOAWAY (the
/// server reached `--max-connection-age`) while another call is still open on it; the
/// request is then cancelled unsent, and the channel reconnects for the next call. The
/// server never saw it, so sending it again is safe.
#[must_use]
pub fn never_sent(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_canceled) {
            return status.code() == tonic::Code::Cancelled;
        }
        source = e.source();
    }
    false
}

/// Runs `call`, and once more if its request was [`never_sent`].
pub async fn resend_unsent<T>(
    mut call: impl AsyncFnMut() -> Result<T, tonic::Status>,
) -> Result<T, tonic::Status> {
    match call().await {
        Err(status) if never_sent(&status) => call().await,
        result => result,
    }
}

/// The largest response the tools accept (a tile or a batch of them).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// `server` as a URL: an `http://host:port` URL as given, a bare `host:port` as http.
fn server_url(server: &str) -> String {
    if server.contains("://") { server.to_owned() } else { format!("http://{server}") }
}

/// Connects to `server` (an `http://host:port` URL or a bare `host:port`).
pub async fn connect(server: &str) -> Result<TileServiceClient<tonic::transport::Channel>, ClientError> {
    let url = server_url(server);
    TileServiceClient::connect(url.clone())
        .await
        .map(|c| c.max_decoding_message_size(MAX_RESPONSE_BYTES))
        .map_err(|source| ClientError::Connect { server: url, source })
}

fn read_pem(flag: &str, path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::Usage(format!("{flag} {}: {e}", path.display())))
}

/// Connects as `args` say: TLS when the address is https:// or a CA is given, a client
/// certificate for mTLS, and the bearer token on every call.
pub async fn connect_with(args: &ConnectArgs) -> Result<Client, ClientError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let tls = args.server.starts_with("https://") || args.ca_cert.is_some();
    let url = match args.server.split_once("://") {
        Some(("https" | "http", rest)) if tls => format!("https://{rest}"),
        Some(_) => args.server.clone(),
        None if tls => format!("https://{}", args.server),
        None => format!("http://{}", args.server),
    };
    let fail = |source| ClientError::Connect { server: url.clone(), source };
    let mut endpoint = Endpoint::from_shared(url.clone()).map_err(fail)?;
    if tls {
        let mut config = ClientTlsConfig::new();
        config = match &args.ca_cert {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read_pem("--ca-cert", ca)?)),
            None => config.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
            config = config.identity(Identity::from_pem(
                read_pem("--client-cert", cert)?,
                read_pem("--client-key", key)?,
            ));
        }
        if let Some(name) = &args.tls_server_name {
            config = config.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(config).map_err(fail)?;
    }
    let token = match (&args.token_file, std::env::var("TESSERA_TOKEN")) {
        (Some(path), _) => {
            let text = String::from_utf8(read_pem("--token-file", path)?)
                .map_err(|_| ClientError::Usage(format!("--token-file {}: not UTF-8", path.display())))?;
            text.lines()
                .next()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| ClientError::Usage(format!("--token-file {} holds no token", path.display())))?
                .into()
        }
        (None, Ok(t)) if !t.trim().is_empty() => Some(t.trim().to_owned()),
        _ => None,
    };
    let token = token
        .map(|t| {
            format!("Bearer {t}")
                .parse()
                .map_err(|_| ClientError::Usage("the bearer token is not printable ASCII".into()))
        })
        .transpose()?;
    let channel = endpoint.connect().await.map_err(fail)?;
    Ok(TileServiceClient::with_interceptor(channel, BearerToken(token))
        .max_decoding_message_size(MAX_RESPONSE_BYTES))
}

fn parse_tile(s: &str) -> Result<(u32, u32, u32), ClientError> {
    let parts: Vec<_> = s.split('/').map(str::parse::<u32>).collect();
    match parts.as_slice() {
        [Ok(z), Ok(x), Ok(y)] => Ok((*z, *x, *y)),
        _ => Err(ClientError::Usage(format!("tile '{s}' is not Z/X/Y (e.g. 12/1194/1551)"))),
    }
}

/// A kernel by its API name; `flag` names the option in the usage error.
fn kernel(flag: &str, s: &str) -> Result<v1::Resampling, ClientError> {
    v1::Resampling::from_str_name(&format!("RESAMPLING_{}", s.to_ascii_uppercase()))
        .ok_or_else(|| ClientError::Usage(format!("unknown {flag} kernel '{s}'")))
}

/// Tiles per GetTiles call of `tessera get --batch` (under the server's default limit).
const BATCH_CHUNK: usize = 500;

fn format_of(arg: Option<FormatArg>, output: &std::path::Path) -> (v1::ImageFormat, &'static str) {
    let arg = arg.unwrap_or_else(|| {
        match output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jpg" | "jpeg") => FormatArg::Jpeg,
            Some("webp") => FormatArg::Webp,
            Some("npy") => FormatArg::Npy,
            _ => FormatArg::Png,
        }
    });
    match arg {
        FormatArg::Png => (v1::ImageFormat::Png, "png"),
        FormatArg::Jpeg => (v1::ImageFormat::Jpeg, "jpg"),
        FormatArg::Webp => (v1::ImageFormat::Webp, "webp"),
        FormatArg::Npy => (v1::ImageFormat::Npy, "npy"),
    }
}

/// `tessera get`: one tile to a file, or a batch file of tiles to a directory.
pub async fn get(args: GetArgs) -> Result<(), ClientError> {
    let (format, extension) =
        format_of(args.format, if args.batch.is_some() { std::path::Path::new("") } else { &args.output });
    let template = v1::GetTileRequest {
        tile_matrix_set: args.tms.clone(),
        tile_size: args.tile_size,
        assets: args.assets.clone(),
        layer: args.layer.clone().unwrap_or_default(),
        bands: args.bands.clone(),
        resampling: kernel("--resampling", &args.resampling)? as i32,
        reproject: args
            .reproject
            .as_deref()
            .map(|k| kernel("--reproject", k))
            .transpose()?
            .unwrap_or_default() as i32,
        format: format as i32,
        ..Default::default()
    };
    if let Some(batch) = &args.batch {
        let text = std::fs::read_to_string(batch)
            .map_err(|e| ClientError::Usage(format!("--batch {}: {e}", batch.display())))?;
        let tiles = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .map(|(i, l)| {
                parse_tile(l).map_err(|e| ClientError::Usage(format!("{}:{}: {e}", batch.display(), i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if tiles.is_empty() {
            return Err(ClientError::Usage(format!("--batch {} lists no tiles", batch.display())));
        }
        let mut client = connect_with(&args.connect).await?;
        return get_batch(&mut client, &template, &tiles, &args.output, extension).await;
    }
    let (z, x, y) = parse_tile(args.tile.as_deref().unwrap_or_default())?;
    let mut client = connect_with(&args.connect).await?;
    let request = v1::GetTileRequest { z, x, y, ..template };
    let tile = resend_unsent(async || client.get_tile(request.clone()).await).await?.into_inner();
    std::fs::write(&args.output, &tile.data)?;
    if !tile.mask.is_empty() {
        let mask_path = args.output.with_extension("mask.npy");
        std::fs::write(&mask_path, &tile.mask)?;
        eprintln!("mask written to {}", mask_path.display());
    }
    eprintln!(
        "{} {}x{} {} ({} bytes) written to {}",
        tile.content_type,
        tile.width,
        tile.height,
        v1::DataType::try_from(tile.dtype).map_or("?", |d| d.as_str_name()),
        tile.data.len(),
        args.output.display()
    );
    for a in &tile.assets {
        let outcome = v1::AssetOutcome::try_from(a.outcome).map_or("?", |o| o.as_str_name());
        eprintln!("  {} {outcome} {}", a.asset, a.error);
    }
    Ok(())
}

/// The progress line: a bar, counts, failures.
fn progress_line(done: usize, total: usize, failed: usize) -> String {
    const WIDTH: usize = 30;
    let filled = WIDTH * done / total.max(1);
    format!("[{}{}] {done}/{total} tiles, {failed} failed", "#".repeat(filled), ".".repeat(WIDTH - filled))
}

async fn get_batch(
    client: &mut Client,
    template: &v1::GetTileRequest,
    tiles: &[(u32, u32, u32)],
    dir: &std::path::Path,
    extension: &str,
) -> Result<(), ClientError> {
    use std::io::{IsTerminal, Write};
    std::fs::create_dir_all(dir)?;
    let started = std::time::Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let (mut done, mut failed, mut bytes) = (0, 0, 0);
    for chunk in tiles.chunks(BATCH_CHUNK) {
        let request = v1::GetTilesRequest {
            tiles: chunk
                .iter()
                .map(|&(z, x, y)| v1::GetTileRequest { z, x, y, ..template.clone() })
                .collect(),
        };
        let mut stream = resend_unsent(async || client.get_tiles(request.clone()).await).await?.into_inner();
        while let Some(item) = stream.message().await? {
            done += 1;
            match item.result {
                Some(v1::get_tiles_response::Result::Tile(tile)) => {
                    let path = dir.join(format!("{}_{}_{}.{extension}", item.z, item.x, item.y));
                    std::fs::write(&path, &tile.data)?;
                    bytes += tile.data.len();
                }
                Some(v1::get_tiles_response::Result::Error(e)) => {
                    failed += 1;
                    let code = code_name(tonic::Code::from(e.code));
                    // On a terminal the progress line is redrawn after the failure.
                    eprintln!(
                        "{}{}/{}/{}: {code}: {}",
                        if terminal { "\r\x1b[K" } else { "" },
                        item.z,
                        item.x,
                        item.y,
                        e.message
                    );
                }
                None => failed += 1,
            }
            if terminal {
                eprint!("\r{}", progress_line(done, tiles.len(), failed));
                let _ = std::io::stderr().flush();
            }
        }
    }
    if terminal {
        eprintln!();
    }
    eprintln!(
        "{}: {} written to {} ({bytes} bytes) in {:.1} s",
        progress_line(done, tiles.len(), failed),
        done - failed,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    if failed > 0 { Err(ClientError::Batch { failed, total: tiles.len() }) } else { Ok(()) }
}

/// Lon/lat bounds for the `tessera info` table: west south east north, and a note when
/// west > east (the asset crosses the antimeridian, and the numbers are not a mistake).
fn fmt_lon_lat_bounds(b: Option<&v1::Bounds>) -> String {
    match b {
        None => "-".to_owned(),
        Some(b) if b.min_x > b.max_x => {
            format!("{} {} {} {} (across the antimeridian)", b.min_x, b.min_y, b.max_x, b.max_y)
        }
        Some(b) => format!("{} {} {} {}", b.min_x, b.min_y, b.max_x, b.max_y),
    }
}

/// `tessera info`: the asset as a table, or as JSON.
pub async fn info(args: InfoArgs) -> Result<(), ClientError> {
    let mut client = connect_with(&args.connect).await?;
    let request = v1::GetAssetInfoRequest { asset: args.asset };
    let info = resend_unsent(async || client.get_asset_info(request.clone()).await).await?.into_inner();
    let dtype = v1::DataType::try_from(info.dtype).map_or("?", |d| d.as_str_name());
    let dtype = dtype.strip_prefix("DATA_TYPE_").unwrap_or(dtype).to_ascii_lowercase();
    let bounds = |b: Option<&v1::Bounds>| b.map(|b| [b.min_x, b.min_y, b.max_x, b.max_y]);
    if args.json {
        let bands: Vec<serde_json::Value> = info
            .bands
            .iter()
            .map(|b| {
                serde_json::json!({
                    "index": b.index, "description": b.description,
                    "color_interpretation": b.color_interpretation,
                    "nodata": if b.has_nodata { Some(b.nodata) } else { None },
                })
            })
            .collect();
        let json = serde_json::json!({
            "asset": info.asset, "driver": info.driver, "crs": info.crs,
            "bounds": bounds(info.bounds.as_ref()), "geographic_bounds": bounds(info.geographic_bounds.as_ref()),
            "width": info.width, "height": info.height, "dtype": dtype,
            "band_count": info.band_count, "data_band_count": info.data_band_count, "bands": bands,
            "overviews": info.overviews.iter().map(|o| [o.width, o.height]).collect::<Vec<_>>(),
            "block": [info.block_width, info.block_height], "has_mask": info.has_mask,
        });
        println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
        return Ok(());
    }
    let fmt_bounds =
        |b: Option<[f64; 4]>| b.map_or_else(|| "-".to_owned(), |[a, b, c, d]| format!("{a} {b} {c} {d}"));
    let overviews: Vec<String> = info.overviews.iter().map(|o| format!("{}x{}", o.width, o.height)).collect();
    for (key, value) in [
        ("asset", info.asset.clone()),
        ("driver", info.driver.clone()),
        ("crs", info.crs.clone()),
        ("size", format!("{} x {}", info.width, info.height)),
        ("type", dtype),
        ("bands", format!("{} ({} data)", info.band_count, info.data_band_count)),
        ("bounds", fmt_bounds(bounds(info.bounds.as_ref()))),
        ("lon/lat bounds", fmt_lon_lat_bounds(info.geographic_bounds.as_ref())),
        ("block", format!("{} x {}", info.block_width, info.block_height)),
        ("overviews", if overviews.is_empty() { "none".to_owned() } else { overviews.join(", ") }),
        ("mask", if info.has_mask { "yes" } else { "no" }.to_owned()),
    ] {
        println!("{key:<15} {value}");
    }
    println!();
    println!("{:<5} {:<8} {:<12} description", "band", "colour", "nodata");
    for b in &info.bands {
        let nodata = if b.has_nodata { b.nodata.to_string() } else { "-".to_owned() };
        println!("{:<5} {:<8} {:<12} {}", b.index, b.color_interpretation, nodata, b.description);
    }
    Ok(())
}
