//! The human tools that talk to a running server: `tessera get` (one tile to a file)
//! and `tessera info` (describe an asset). The benchmark lives in [`crate::client::bench`].

mod bench;
mod chaos;
mod otlp_sink;

use std::path::PathBuf;

pub use bench::{BenchArgs, bench};
pub use chaos::{ChaosArgs, chaos};
use clap::{Args, ValueEnum};

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
    #[error("the request failed")]
    Rpc(#[from] tonic::Status),
    /// Writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
    #[arg(long = "asset", required = true)]
    pub assets: Vec<String>,
    /// The tile as Z/X/Y.
    pub tile: String,
    /// Output file.
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
    /// Resampling: nearest, bilinear, cubic, cubic_spline, lanczos, average, mode.
    #[arg(long, default_value = "nearest")]
    pub resampling: String,
}

/// Flags of `tessera info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Server, TLS and token.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Asset path on the server.
    pub asset: String,
}

/// Connects to `server` (an `http://host:port` URL or a bare `host:port`).
pub async fn connect(server: &str) -> Result<TileServiceClient<tonic::transport::Channel>, ClientError> {
    let url = if server.contains("://") { server.to_owned() } else { format!("http://{server}") };
    TileServiceClient::connect(url.clone())
        .await
        .map(|c| c.max_decoding_message_size(256 * 1024 * 1024))
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
        .max_decoding_message_size(256 * 1024 * 1024))
}

fn parse_tile(s: &str) -> Result<(u32, u32, u32), ClientError> {
    let parts: Vec<_> = s.split('/').map(str::parse::<u32>).collect();
    match parts.as_slice() {
        [Ok(z), Ok(x), Ok(y)] => Ok((*z, *x, *y)),
        _ => Err(ClientError::Usage(format!("tile '{s}' is not Z/X/Y (e.g. 12/1194/1551)"))),
    }
}

fn resampling(s: &str) -> Result<v1::Resampling, ClientError> {
    v1::Resampling::from_str_name(&format!("RESAMPLING_{}", s.to_ascii_uppercase()))
        .ok_or_else(|| ClientError::Usage(format!("unknown resampling '{s}'")))
}

/// `tessera get`.
pub async fn get(args: GetArgs) -> Result<(), ClientError> {
    let (z, x, y) = parse_tile(&args.tile)?;
    let format = args.format.unwrap_or_else(|| {
        match args.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jpg" | "jpeg") => FormatArg::Jpeg,
            Some("webp") => FormatArg::Webp,
            Some("npy") => FormatArg::Npy,
            _ => FormatArg::Png,
        }
    });
    let format = match format {
        FormatArg::Png => v1::ImageFormat::Png,
        FormatArg::Jpeg => v1::ImageFormat::Jpeg,
        FormatArg::Webp => v1::ImageFormat::Webp,
        FormatArg::Npy => v1::ImageFormat::Npy,
    };
    let mut client = connect_with(&args.connect).await?;
    let tile = client
        .get_tile(v1::GetTileRequest {
            tile_matrix_set: args.tms,
            z,
            x,
            y,
            tile_size: args.tile_size,
            assets: args.assets,
            bands: args.bands,
            resampling: resampling(&args.resampling)? as i32,
            format: format as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
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

/// `tessera info`.
pub async fn info(args: InfoArgs) -> Result<(), ClientError> {
    let mut client = connect_with(&args.connect).await?;
    let info = client.get_asset_info(v1::GetAssetInfoRequest { asset: args.asset }).await?.into_inner();
    println!("{info:#?}");
    Ok(())
}
