//! OGC Two Dimensional Tile Matrix Set 2.0 JSON (OGC 17-083r4) → a custom
//! [`TileMatrixSet`].
//!
//! What is read: `id`, `title`, `uri`, `crs` (a URI, `{"uri": ...}`, `{"wkt": ...}` as
//! text or PROJJSON), `orderedAxes`, and per matrix `id`, `cellSize`, `cornerOfOrigin`
//! (`topLeft` by default, or `bottomLeft`), `pointOfOrigin` (in the CRS's axis order,
//! which `orderedAxes` gives), `tileWidth`, `tileHeight`, `matrixWidth`,
//! `matrixHeight`. Matrix ids must be the zoom levels "0", "1", ... in order (Tessera
//! addresses tiles by z/x/y). Variable-width matrices are refused.

use serde_json::Value;

use super::{Definition, Geographic, Kind, Matrix, TileMatrixSet};

/// Most matrices (zoom levels) in one set.
const MAX_MATRICES: usize = 64;
/// Largest tile edge a set may declare, in pixels.
const MAX_TILE_EDGE: u64 = 4096;

/// Why a tile matrix set file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TmsError {
    /// The file cannot be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{path}: not JSON: {error}")]
    Json {
        /// The file.
        path: String,
        /// serde_json's message, with line and column.
        error: serde_json::Error,
    },
    /// A field is missing or wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, and what is allowed.
        message: String,
    },
}

/// Parses an OGC TMS 2.0 JSON document; `path` names it in errors.
pub fn parse_ogc_json(path: &str, text: &str) -> Result<TileMatrixSet, TmsError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|error| TmsError::Json { path: path.to_owned(), error })?;
    let invalid = |message: String| TmsError::Invalid { path: path.to_owned(), message };
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("\"id\" (a string) is missing".into()))?;
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        return Err(invalid(format!("id {id:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'")));
    }
    let crs = gdal_crs(doc.get("crs")).map_err(|e| invalid(format!("crs: {e}")))?;
    let swap = match doc.get("orderedAxes").and_then(Value::as_array) {
        Some(axes) => axes.first().and_then(Value::as_str).is_some_and(is_northing),
        // Without orderedAxes, EPSG:4326 is the one common CRS whose first axis is latitude.
        None => crs == "EPSG:4326",
    };
    let matrices = doc
        .get("tileMatrices")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("\"tileMatrices\" (an array) is missing".into()))?;
    if matrices.is_empty() || matrices.len() > MAX_MATRICES {
        return Err(invalid(format!("{} tile matrices: 1 to {MAX_MATRICES} are allowed", matrices.len())));
    }
    let matrices = matrices
        .iter()
        .enumerate()
        .map(|(z, m)| matrix(z, m, swap).map_err(|e| invalid(format!("tileMatrices[{z}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let geographic = match crs.as_str() {
        "EPSG:3857" => Geographic::Mercator,
        "EPSG:4326" | "OGC:CRS84" => Geographic::LonLat,
        _ => Geographic::Unknown,
    };
    let text_of = |key: &str| doc.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    Ok(TileMatrixSet::leak(Definition {
        id: leak(id.to_owned()),
        title: leak(text_of("title")),
        crs: leak(crs),
        uri: leak(text_of("uri")),
        kind: Kind::Custom { matrices, geographic },
    }))
}

/// Whether an axis name or abbreviation is the northing / latitude axis.
fn is_northing(axis: &str) -> bool {
    ["y", "lat", "latitude", "n", "northing", "north"].contains(&axis.to_ascii_lowercase().as_str())
}

/// The CRS as a string GDAL's `-t_srs` takes.
fn gdal_crs(crs: Option<&Value>) -> Result<String, String> {
    let uri = match crs {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(o)) => {
            if let Some(uri) = o.get("uri").and_then(Value::as_str) {
                uri
            } else if let Some(wkt) = o.get("wkt") {
                // WKT text, or PROJJSON (an object), which GDAL 3.6 also takes.
                return Ok(wkt.as_str().map_or_else(|| wkt.to_string(), str::to_owned));
            } else {
                return Err("give a URI, {\"uri\": ...} or {\"wkt\": ...}".into());
            }
        }
        _ => return Err("missing: give a URI such as http://www.opengis.net/def/crs/EPSG/0/3857".into()),
    };
    let tail = |prefix: &str| uri.strip_prefix(prefix);
    for prefix in ["http://www.opengis.net/def/crs/", "https://www.opengis.net/def/crs/", "urn:ogc:def:crs:"]
    {
        if let Some(rest) = tail(prefix) {
            // EPSG/0/3857 or EPSG::3857; OGC/1.3/CRS84 or OGC:1.3:CRS84.
            let parts: Vec<&str> = rest.split(['/', ':']).filter(|p| !p.is_empty()).collect();
            return match parts.as_slice() {
                [authority, .., code]
                    if authority.eq_ignore_ascii_case("EPSG") && code.parse::<u32>().is_ok() =>
                {
                    Ok(format!("EPSG:{code}"))
                }
                [authority, .., code]
                    if authority.eq_ignore_ascii_case("OGC") && code.eq_ignore_ascii_case("CRS84") =>
                {
                    Ok("OGC:CRS84".into())
                }
                _ => Err(format!("{uri:?} is not an EPSG code or OGC CRS84 URI")),
            };
        }
    }
    match uri.split_once(':') {
        Some((authority, code)) if authority.eq_ignore_ascii_case("EPSG") && code.parse::<u32>().is_ok() => {
            Ok(format!("EPSG:{code}"))
        }
        _ => Err(format!(
            "{uri:?} is not a CRS URI (e.g. http://www.opengis.net/def/crs/EPSG/0/3857) or EPSG:code"
        )),
    }
}

fn matrix(z: usize, m: &Value, swap: bool) -> Result<Matrix, String> {
    let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
    if id != z.to_string() {
        return Err(format!("id {id:?} must be \"{z}\": matrices are the zoom levels 0, 1, ... in order"));
    }
    if m.get("variableMatrixWidths").is_some() {
        return Err("variableMatrixWidths is not supported".into());
    }
    let number = |key: &str| {
        m.get(key).and_then(Value::as_f64).ok_or_else(|| format!("\"{key}\" (a number) is missing"))
    };
    let count = |key: &str, max: u64| {
        m.get(key)
            .and_then(Value::as_u64)
            .filter(|v| (1..=max).contains(v))
            .map(|v| v as u32)
            .ok_or_else(|| format!("\"{key}\" must be an integer in 1..={max}"))
    };
    let cell_size = number("cellSize")?;
    if !(cell_size.is_finite() && cell_size > 0.0) {
        return Err(format!("cellSize {cell_size} must be a positive number"));
    }
    let top_left = match m.get("cornerOfOrigin").and_then(Value::as_str).unwrap_or("topLeft") {
        "topLeft" => true,
        "bottomLeft" => false,
        other => return Err(format!("cornerOfOrigin {other:?} must be \"topLeft\" or \"bottomLeft\"")),
    };
    let origin = m
        .get("pointOfOrigin")
        .and_then(Value::as_array)
        .and_then(|p| Some((p.first()?.as_f64()?, p.get(1)?.as_f64()?)))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .ok_or_else(|| "\"pointOfOrigin\" must be two numbers".to_owned())?;
    let (origin_x, origin_y) = if swap { (origin.1, origin.0) } else { origin };
    let (tile_width, tile_height) = (count("tileWidth", MAX_TILE_EDGE)?, count("tileHeight", MAX_TILE_EDGE)?);
    if tile_width != tile_height {
        return Err(format!("tiles of {tile_width} x {tile_height} px: only square tiles are supported"));
    }
    Ok(Matrix {
        cell_size,
        origin_x,
        origin_y,
        top_left,
        tile_width,
        tile_height,
        matrix_width: count("matrixWidth", u64::from(u32::MAX))?,
        matrix_height: count("matrixHeight", u64::from(u32::MAX))?,
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the bounds are exact products of the file's numbers
pub(crate) mod tests {
    use super::*;

    /// A UTM zone 18N grid: 1024 m tiles of 256 px at zoom 0, halving below.
    pub(crate) const UTM_GRID: &str = r#"{
      "id": "UTM18NQuad", "title": "UTM 18N test grid",
      "crs": "http://www.opengis.net/def/crs/EPSG/0/32618",
      "orderedAxes": ["E", "N"],
      "tileMatrices": [
        {"id": "0", "cellSize": 4.0, "cornerOfOrigin": "topLeft", "pointOfOrigin": [480000.0, 4430000.0],
         "tileWidth": 256, "tileHeight": 256, "matrixWidth": 40, "matrixHeight": 40},
        {"id": "1", "cellSize": 2.0, "pointOfOrigin": [480000.0, 4430000.0],
         "tileWidth": 256, "tileHeight": 256, "matrixWidth": 80, "matrixHeight": 80}
      ]
    }"#;

    #[test]
    fn a_utm_grid_gives_exact_tile_bounds() {
        let tms = parse_ogc_json("utm.json", UTM_GRID).unwrap();
        assert_eq!(tms.id(), "UTM18NQuad");
        assert_eq!(tms.crs(), "EPSG:32618");
        assert_eq!(tms.max_zoom(), 1);
        let b = tms.tile(1, 3, 2).unwrap().bounds();
        assert_eq!((b.min_x, b.max_x, b.min_y, b.max_y), (481_536.0, 482_048.0, 4_428_464.0, 4_428_976.0));
        assert_eq!(tms.tile(1, 3, 2).unwrap().geographic_bounds(), None);
        assert_eq!(tms.tile(2, 0, 0).unwrap_err().to_string(), "z=2 is outside 0..=1 for UTM18NQuad");
        assert_eq!(
            tms.tile(0, 40, 0).unwrap_err().to_string(),
            "x=40 is outside 0..=39 for UTM18NQuad at z=0"
        );
    }

    #[test]
    fn latitude_first_origins_are_swapped_and_bottom_left_rows_count_up() {
        let text = r#"{"id": "LatLon", "crs": {"uri": "http://www.opengis.net/def/crs/EPSG/0/4326"},
          "orderedAxes": ["Lat", "Lon"],
          "tileMatrices": [{"id": "0", "cellSize": 1.0, "cornerOfOrigin": "bottomLeft",
            "pointOfOrigin": [-90.0, -180.0], "tileWidth": 90, "tileHeight": 90,
            "matrixWidth": 4, "matrixHeight": 2}]}"#;
        let tms = parse_ogc_json("ll.json", text).unwrap();
        let b = tms.tile(0, 1, 1).unwrap().bounds();
        assert_eq!((b.min_x, b.max_x, b.min_y, b.max_y), (-90.0, 0.0, 0.0, 90.0));
        assert_eq!(tms.tile(0, 1, 1).unwrap().geographic_bounds(), Some(b));
    }

    #[test]
    fn crs_forms_are_understood() {
        let crs = |v: Value| gdal_crs(Some(&v));
        assert_eq!(crs(Value::from("http://www.opengis.net/def/crs/OGC/1.3/CRS84")).unwrap(), "OGC:CRS84");
        assert_eq!(crs(Value::from("urn:ogc:def:crs:EPSG::3035")).unwrap(), "EPSG:3035");
        assert_eq!(crs(Value::from("EPSG:2056")).unwrap(), "EPSG:2056");
        assert_eq!(crs(serde_json::json!({"wkt": "PROJCS[...]"})).unwrap(), "PROJCS[...]");
        assert!(crs(Value::from("http://example.com/crs")).unwrap_err().contains("is not a CRS URI"));
    }

    #[test]
    fn broken_files_say_what_is_wrong() {
        let cases = [
            ("{", "not JSON"),
            (r#"{"crs": "EPSG:3857", "tileMatrices": []}"#, "\"id\" (a string) is missing"),
            (r#"{"id": "a b", "crs": "EPSG:3857"}"#, "must be 1 to 64 characters"),
            (
                r#"{"id": "x", "crs": "EPSG:3857", "tileMatrices": []}"#,
                "0 tile matrices: 1 to 64 are allowed",
            ),
            (
                r#"{"id": "x", "crs": "EPSG:3857", "tileMatrices": [{"id": "1"}]}"#,
                "tileMatrices[0]: id \"1\" must be \"0\"",
            ),
            (
                r#"{"id": "x", "crs": "EPSG:3857", "tileMatrices": [{"id": "0", "cellSize": -1, "pointOfOrigin": [0, 0]}]}"#,
                "cellSize -1 must be a positive number",
            ),
            (
                r#"{"id": "x", "crs": "EPSG:3857", "tileMatrices": [{"id": "0", "cellSize": 1, "pointOfOrigin": [0, 0], "tileWidth": 0, "tileHeight": 256, "matrixWidth": 1, "matrixHeight": 1}]}"#,
                "\"tileWidth\" must be an integer in 1..=4096",
            ),
        ];
        for (text, expected) in cases {
            let e = parse_ogc_json("t.json", text).unwrap_err().to_string();
            assert!(e.starts_with("t.json: ") && e.contains(expected), "{text}: {e}");
        }
    }
}
