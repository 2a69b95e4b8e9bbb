//! Why a layer could not be configured, loaded or asked for a tile.

/// Errors of the layer registry: bad `[[layers]]` configuration, unreadable or invalid
/// MosaicJSON documents and glob patterns, and tiles outside a layer's zoom range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// A layer name outside `[A-Za-z0-9_.-]{1,64}`.
    #[error("layer name '{name}' is not allowed: use 1 to 64 of A-Z a-z 0-9 _ . -")]
    InvalidName {
        /// The name as configured.
        name: String,
    },
    /// Two `[[layers]]` tables with the same name.
    #[error("layer '{name}' is configured twice; layer names must be unique")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A `[[layers]]` table that sets more than one of `mosaicjson`, `footprint` and
    /// `stac`, or none.
    #[error(
        "layer '{name}': set exactly one of `mosaicjson = \"file.json\"`, a `footprint` table or a `stac` table ({found})"
    )]
    Kind {
        /// The layer.
        name: String,
        /// What was found: "more than one is set" or "none is set".
        found: &'static str,
    },
    /// A field of a layer's configuration with a value that is not allowed.
    #[error("layer '{layer}': `{field}` {problem}")]
    Config {
        /// The layer.
        layer: String,
        /// The field, as written in the configuration (`footprint.glob`).
        field: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A document (MosaicJSON, STAC items) could not be read.
    #[error("{document}: cannot read: {source}")]
    Read {
        /// The file or URL.
        document: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A MosaicJSON file that is not JSON of the expected shape (the message carries the
    /// line and column).
    #[error("{document}: not a MosaicJSON document: {source}")]
    Parse {
        /// The file or URL.
        document: String,
        /// serde_json's error, with line and column.
        source: serde_json::Error,
    },
    /// A MosaicJSON field with a value Tessera does not accept.
    #[error("{document}: field `{field}` {problem}")]
    MosaicField {
        /// The file or URL.
        document: String,
        /// The field.
        field: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A footprint layer's glob could not be walked.
    #[error("layer '{layer}': cannot list `{pattern}`: {problem}")]
    Glob {
        /// The layer.
        layer: String,
        /// The pattern, joined to the data directory.
        pattern: String,
        /// The error from the file system or the pattern parser.
        problem: String,
    },
    /// A STAC document that cannot be used as a whole (not an ItemCollection, not a
    /// stac-geoparquet file, unreadable).
    #[error("layer '{layer}': {document}: {problem}")]
    StacDocument {
        /// The layer.
        layer: String,
        /// The file or URL.
        document: String,
        /// What is wrong.
        problem: String,
    },
    /// One item of a STAC document that cannot be used.
    #[error("layer '{layer}': {document}: item '{item}' {problem}")]
    StacItem {
        /// The layer.
        layer: String,
        /// The file or URL.
        document: String,
        /// The item's id (or `#index` when it has none, `row N` in parquet).
        item: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A layer's `overview` file that cannot be found or read at start.
    #[error(
        "layer '{layer}': overview {}: cannot read: {source}; build it with `tessera layer build-overview {layer} --max-zoom N -o FILE`, or remove `overview` from the layer",
        path.display()
    )]
    Overview {
        /// The layer.
        layer: String,
        /// The overview file, joined to the data directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A tile whose zoom the layer does not serve.
    #[error("layer '{layer}' serves zoom levels {minzoom}..={maxzoom}; tile zoom {z} is outside")]
    ZoomOutsideLayer {
        /// The layer.
        layer: String,
        /// The tile's zoom.
        z: u8,
        /// The layer's lowest zoom.
        minzoom: u8,
        /// The layer's highest zoom.
        maxzoom: u8,
    },
}
