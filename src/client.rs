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

/// Flags of `tessera get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "TESSERA_SERVER")]
    pub server: String,
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
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "TESSERA_SERVER")]
    pub server: String,
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
    let mut client = connect(&args.server).await?;
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
    let mut client = connect(&args.server).await?;
    let info = client.get_asset_info(v1::GetAssetInfoRequest { asset: args.asset }).await?.into_inner();
    println!("{info:#?}");
    Ok(())
}
