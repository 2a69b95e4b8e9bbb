//! What the server serves: the data directory and the other local directories assets
//! may be read from, tile matrix sets besides the built-in ones, and the `[[layers]]`.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use serde::Deserialize;

use super::ConfigError;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default of `--layer-reload-interval`.
pub const DEFAULT_LAYER_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The data flags, and their keys of the config file (the `[[layers]]` tables are the
/// file's own: see [`super::FileConfig`]).
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default)]
pub struct DataArgs {
    /// Directory the assets are read from [default: ./data].
    #[arg(long, env = "TESSERA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Another local directory whose files may be named by absolute path (repeatable; env:
    /// comma-separated); relative names always resolve in --data-dir [default: none].
    #[arg(long, env = "TESSERA_ALLOW_LOCAL", value_delimiter = ',')]
    pub allow_local: Vec<PathBuf>,
    /// An OGC TileMatrixSet 2.0 JSON file: one more tile matrix set to serve besides
    /// WebMercatorQuad and WorldCRS84Quad (repeatable; env: comma-separated) [default: none].
    #[arg(long = "tile-matrix-set", env = "TESSERA_TILE_MATRIX_SETS", value_delimiter = ',')]
    pub tile_matrix_sets: Vec<PathBuf>,
    /// How often the `[[layers]]` of the config file are checked for changed MosaicJSON
    /// files and glob matches; 0s = never [default: 5s].
    #[arg(long, env = "TESSERA_LAYER_RELOAD_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "super::humantime_serde_opt")]
    pub layer_reload_interval: Option<Duration>,
}

/// What the server serves, checked to exist.
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--allow-local` directories.
    pub allow_local: Vec<PathBuf>,
    /// The built-in tile matrix sets and those of `--tile-matrix-set` files.
    pub tile_matrix_sets: crate::tms::TileMatrixSets,
    /// The `[[layers]]` tables of the config file (validated).
    pub layers: Vec<crate::layers::LayerConfig>,
    /// `--layer-reload-interval` (zero: never).
    pub layer_reload_interval: Duration,
}

impl DataArgs {
    /// These flags over `file` over the defaults, with the file's `[[layers]]`; reads the
    /// tile matrix set files and checks the directories and the layers.
    pub fn resolve(
        self,
        file: Self,
        layers: Vec<crate::layers::LayerConfig>,
    ) -> Result<DataConfig, ConfigError> {
        let tile_matrix_sets = crate::tms::TileMatrixSets::load(if self.tile_matrix_sets.is_empty() {
            &file.tile_matrix_sets
        } else {
            &self.tile_matrix_sets
        })
        .map_err(|e| ConfigError::Invalid(format!("--tile-matrix-set {e}")))?;
        let config = DataConfig {
            data_dir: self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            allow_local: if self.allow_local.is_empty() { file.allow_local } else { self.allow_local },
            tile_matrix_sets,
            layers,
            layer_reload_interval: self
                .layer_reload_interval
                .or(file.layer_reload_interval)
                .unwrap_or(DEFAULT_LAYER_RELOAD_INTERVAL),
        };
        if let Some(dir) = config.allow_local.iter().find(|d| !d.is_dir()) {
            return Err(ConfigError::Invalid(format!("--allow-local {} is not a directory", dir.display())));
        }
        if !config.data_dir.is_dir() {
            return Err(ConfigError::Invalid(format!(
                "--data-dir {} is not a directory",
                config.data_dir.display()
            )));
        }
        crate::layers::validate(&config.layers, &config.data_dir)
            .map_err(|e| ConfigError::Invalid(format!("[[layers]]: {e}")))?;
        Ok(config)
    }
}
