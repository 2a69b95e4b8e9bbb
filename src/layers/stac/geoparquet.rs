//! stac-geoparquet: one row per STAC item, read with the `parquet` crate's arrow reader
//! into the [`RawItem`]s the ItemCollection reader produces.
//!
//! Only the columns the layer needs are decoded (a projection on the file's leaf
//! columns): `id`, `bbox` (a struct of `xmin`, `ymin`, `xmax`, `ymax`, as
//! stac-geoparquet 1.0 writes it, or a list of 4 or 6 numbers), `geometry` (WKB, only
//! when there is no `bbox` column), `assets.<asset>.href`, `datetime`,
//! `start_datetime`, `end_datetime` (timestamps of any unit, or RFC 3339 strings), and
//! the properties the selection filters or sorts on (top-level columns). Rows are read
//! one record batch at a time, so what the reader holds beyond the items is one batch of
//! those columns.
//!
//! A file that is not parquet, or lacks `id`, `assets` (with the chosen asset's `href`)
//! or both `bbox` and `geometry`, is refused as a whole ([`LayerError::StacDocument`]);
//! a row that cannot be used names its item ([`LayerError::StacItem`]; `row N`, from 0,
//! when its id is null).

use std::{collections::HashSet, fmt::Write as _, sync::Arc};

use arrow_array::{
    Array, RecordBatch,
    cast::AsArray,
    types::{
        Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
        TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
        UInt32Type, UInt64Type,
    },
};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::{ProjectionMask, arrow_reader::ParquetRecordBatchReaderBuilder};
use serde_json::Value;

use super::{Location, RawItem, Selection, bbox_of, item_error};
use crate::layers::LayerError;

/// Rows decoded at a time: large enough that per-batch costs vanish, small enough that a
/// batch of the projected columns is a few megabytes.
pub const BATCH_ROWS: usize = 8192;

/// The datetime columns, read whenever present.
const DATETIME_COLUMNS: [&str; 3] = ["datetime", "start_datetime", "end_datetime"];

/// The items of the stac-geoparquet `file` (read from `document`, for messages).
pub fn read_items(
    layer: &str,
    document: &Location,
    file: impl parquet::file::reader::ChunkReader + 'static,
    selection: &Selection,
) -> Result<Vec<RawItem>, LayerError> {
    let refuse = |problem: String| LayerError::StacDocument {
        layer: layer.to_owned(),
        document: document.to_string(),
        problem,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| refuse(format!("not a stac-geoparquet file: {e}")))?;
    let schema = Arc::clone(builder.schema());
    let has = |name: &str| schema.field_with_name(name).is_ok();
    if !has("id") {
        return Err(refuse("not a stac-geoparquet file: it has no `id` column".to_owned()));
    }
    if !has("bbox") && !has("geometry") {
        return Err(refuse(
            "not a stac-geoparquet file: it has neither a `bbox` nor a `geometry` column".to_owned(),
        ));
    }
    let asset_fields = match schema.field_with_name("assets").map(arrow_schema::Field::data_type) {
        Ok(DataType::Struct(fields)) => fields.clone(),
        Ok(other) => return Err(refuse(format!("its `assets` column is {other}, not a struct of assets"))),
        Err(_) => return Err(refuse("not a stac-geoparquet file: it has no `assets` column".to_owned())),
    };
    let asset = &selection.asset;
    let Some((_, asset_field)) = asset_fields.find(asset) else {
        let keys: Vec<&str> = asset_fields.iter().map(|f| f.name().as_str()).collect();
        return Err(refuse(format!(
            "no item has asset '{asset}' (the `assets` column has: {})",
            keys.join(", ")
        )));
    };
    if !matches!(asset_field.data_type(), DataType::Struct(f) if f.find("href").is_some()) {
        return Err(refuse(format!("asset '{asset}' of the `assets` column has no `href` field")));
    }
    let properties = selection.properties();
    let mut roots: Vec<&str> = vec!["id"];
    if has("bbox") {
        roots.push("bbox");
    }
    // The geometry is decoded only for rows without a bbox: when there is no `bbox`
    // column, or when the file's statistics do not rule out a null one.
    if has("geometry") && (!has("bbox") || bbox_may_be_null(builder.metadata())) {
        roots.push("geometry");
    }
    roots.extend(DATETIME_COLUMNS);
    roots.extend(properties.iter().map(String::as_str));
    let parquet_schema = builder.parquet_schema();
    let leaves: Vec<usize> = (0..parquet_schema.num_columns())
        .filter(|&i| {
            let column = parquet_schema.column(i);
            let parts = column.path().parts();
            roots.contains(&parts[0].as_str())
                || (parts.len() >= 3 && parts[0] == "assets" && parts[1] == *asset && parts[2] == "href")
        })
        .collect();
    let mask = ProjectionMask::leaves(parquet_schema, leaves);
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| refuse(format!("cannot be read: {e}")))?;
    let mut items = Vec::with_capacity(rows);
    let mut hrefs = HashSet::new();
    let mut first_row = 0;
    for batch in reader {
        let batch = batch.map_err(|e| refuse(format!("cannot be read past row {first_row}: {e}")))?;
        let rows = Rows { batch: &batch, asset, properties: &properties };
        for row in 0..batch.num_rows() {
            let number = first_row + row;
            let id = match rows.text("id", row) {
                Ok(Some(id)) => id.to_owned(),
                Ok(None) | Err(_) => format!("row {number}"),
            };
            let item = rows
                .item(row, id.clone(), &mut hrefs)
                .map_err(|problem| item_error(layer, document, &id, problem))?;
            items.push(item);
        }
        first_row += batch.num_rows();
    }
    Ok(items)
}

/// Whether a row's `bbox` may be null: a row group's statistics count nulls in one of
/// its leaf columns, or do not say.
fn bbox_may_be_null(metadata: &parquet::file::metadata::ParquetMetaData) -> bool {
    metadata.row_groups().iter().any(|group| {
        group.columns().iter().filter(|c| c.column_path().parts().first().is_some_and(|p| p == "bbox")).any(
            |c| c.statistics().and_then(parquet::file::statistics::Statistics::null_count_opt) != Some(0),
        )
    })
}

/// One record batch of the projected columns, read row by row.
struct Rows<'a> {
    batch: &'a RecordBatch,
    asset: &'a str,
    properties: &'a [String],
}

impl Rows<'_> {
    fn column(&self, name: &str) -> Option<&dyn Array> {
        self.batch.column_by_name(name).map(AsRef::as_ref)
    }

    /// The item of `row`, or what is wrong with it. Equal hrefs share one allocation
    /// (`hrefs` holds one of each).
    fn item(&self, row: usize, id: String, hrefs: &mut HashSet<Arc<str>>) -> Result<RawItem, String> {
        if let Some(Err(problem)) = self.column("id").map(|c| text(c, row)) {
            return Err(format!("has {}", column_problem("id", &problem)));
        }
        let bbox = self.bbox(row)?;
        let href = self.href(row)?;
        let href = if let Some(shared) = hrefs.get(href) {
            Arc::clone(shared)
        } else {
            let shared: Arc<str> = Arc::from(href);
            hrefs.insert(Arc::clone(&shared));
            shared
        };
        let time = |name: &str| match self.column(name) {
            Some(c) => timestamp_text(c, row).map_err(|p| format!("has {}", column_problem(name, &p))),
            None => Ok(None),
        };
        let datetime = match time("datetime")? {
            Some(t) => Some((t.clone(), t)),
            None => time("start_datetime")?.zip(time("end_datetime")?),
        };
        let properties = self
            .properties
            .iter()
            .map(|name| match self.column(name) {
                Some(c) => json_value(c, row).map_err(|p| format!("has {}", column_problem(name, &p))),
                None => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        Ok(RawItem { id, bbox, href, datetime, properties })
    }

    fn text(&self, name: &str, row: usize) -> Result<Option<&str>, String> {
        self.column(name).map_or(Ok(None), |c| text(c, row))
    }

    /// The `bbox` (or, without that column, the geometry's extent), checked.
    fn bbox(&self, row: usize) -> Result<[f64; 4], String> {
        let expected = "expected [west, south, east, north] (or 6 numbers with heights) in degrees";
        if let Some(column) = self.column("bbox") {
            let numbers =
                bbox_numbers(column, row).map_err(|p| format!("has {}", column_problem("bbox", &p)))?;
            if let Some(numbers) = numbers {
                return bbox_of(&numbers).ok_or_else(|| format!("has bbox {numbers:?}; {expected}"));
            }
        }
        let Some(geometry) = self.column("geometry").filter(|g| g.is_valid(row)) else {
            return Err("has neither a bbox nor a geometry".to_owned());
        };
        let wkb = match geometry.data_type() {
            DataType::Binary => geometry.as_binary::<i32>().value(row),
            DataType::LargeBinary => geometry.as_binary::<i64>().value(row),
            DataType::BinaryView => geometry.as_binary_view().value(row),
            other => {
                return Err(format!(
                    "has {}",
                    column_problem("geometry", &format!("{other}, not WKB binary"))
                ));
            }
        };
        wkb_extent(wkb)
            .ok_or_else(|| "has no bbox and a geometry that is not WKB with coordinates".to_owned())
            .and_then(|b| {
                bbox_of(&b).ok_or_else(|| format!("has a geometry whose extent {b:?} is not in degrees"))
            })
    }

    /// `assets.<asset>.href`, non-empty.
    fn href(&self, row: usize) -> Result<&str, String> {
        let asset = self
            .column("assets")
            .filter(|a| a.is_valid(row))
            .and_then(|a| a.as_struct_opt())
            .and_then(|a| a.column_by_name(self.asset))
            .filter(|a| a.is_valid(row))
            .ok_or_else(|| format!("has no asset '{}'", self.asset))?;
        let href = asset.as_struct_opt().and_then(|a| a.column_by_name("href"));
        match href.map(|h| text(h, row)) {
            Some(Ok(Some(h))) if !h.is_empty() => Ok(h),
            Some(Err(problem)) => {
                Err(format!("has {}", column_problem(&format!("assets.{}.href", self.asset), &problem)))
            }
            _ => Err(format!("asset '{}' has no href", self.asset)),
        }
    }
}

/// "column 'bbox' of type Utf8; expected ..." for a message that starts with "has".
fn column_problem(column: &str, problem: &str) -> String {
    format!("column '{column}' of type {problem}")
}

/// A string cell (`None` when null); an error naming the type for a non-string column.
fn text(column: &dyn Array, row: usize) -> Result<Option<&str>, String> {
    if column.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().value(row),
        DataType::LargeUtf8 => column.as_string::<i64>().value(row),
        DataType::Utf8View => column.as_string_view().value(row),
        other => return Err(format!("{other}, not a string")),
    }))
}

/// A floating-point or integer cell as f64, `None` when null or not a number.
fn number(column: &dyn Array, row: usize) -> Option<f64> {
    if column.is_null(row) {
        return None;
    }
    match column.data_type() {
        DataType::Float64 => Some(column.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => Some(f64::from(column.as_primitive::<Float32Type>().value(row))),
        _ => match json_value(column, row) {
            Ok(Some(Value::Number(n))) => n.as_f64(),
            _ => None,
        },
    }
}

/// The numbers of a bbox cell: a struct of `xmin, ymin, xmax, ymax` (stac-geoparquet
/// 1.0) or a list of 4 or 6 numbers; `None` when null.
fn bbox_numbers(column: &dyn Array, row: usize) -> Result<Option<Vec<f64>>, String> {
    if column.is_null(row) {
        return Ok(None);
    }
    let values = match column.data_type() {
        DataType::Struct(_) => {
            let fields = column.as_struct();
            let corner = |name: &str| fields.column_by_name(name).and_then(|c| number(c.as_ref(), row));
            let corners = ["xmin", "ymin", "xmax", "ymax"].map(corner);
            return match corners {
                [Some(w), Some(s), Some(e), Some(n)] => Ok(Some(vec![w, s, e, n])),
                _ if ["xmin", "ymin", "xmax", "ymax"].iter().all(|n| fields.column_by_name(n).is_some()) => {
                    Err(format!("{}, with a null or non-numeric corner", column.data_type()))
                }
                _ => Err(format!("{}; expected a struct of xmin, ymin, xmax, ymax", column.data_type())),
            };
        }
        DataType::List(_) => column.as_list::<i32>().value(row),
        DataType::LargeList(_) => column.as_list::<i64>().value(row),
        DataType::FixedSizeList(_, _) => column.as_fixed_size_list().value(row),
        other => {
            return Err(format!("{other}; expected a struct of xmin, ymin, xmax, ymax or a list of numbers"));
        }
    };
    (0..values.len())
        .map(|i| number(values.as_ref(), i))
        .collect::<Option<Vec<f64>>>()
        .map(Some)
        .ok_or_else(|| format!("{}, with a null or non-numeric value", column.data_type()))
}

/// A datetime cell as RFC 3339 text: timestamps (any unit; UTC, whatever the zone
/// annotation, as arrow stores them) or strings as written. `None` when null.
fn timestamp_text(column: &dyn Array, row: usize) -> Result<Option<String>, String> {
    if column.is_null(row) {
        return Ok(None);
    }
    match column.data_type() {
        DataType::Timestamp(..) | DataType::Date32 => match json_value(column, row)? {
            Some(Value::String(s)) => Ok(Some(s)),
            _ => Ok(None),
        },
        _ => text(column, row)
            .map(|t| t.map(str::to_owned))
            .map_err(|_| format!("{}, not a timestamp or an RFC 3339 string", column.data_type())),
    }
}

/// A cell as a JSON value for filters and sorts: strings, integers, floats (a float32's
/// shortest decimal form, so that `gsd = 0.6` matches it), booleans, timestamps as RFC
/// 3339 text, dates as `YYYY-MM-DD`. `None` when null (or NaN).
fn json_value(column: &dyn Array, row: usize) -> Result<Option<Value>, String> {
    if column.is_null(row) {
        return Ok(None);
    }
    let value = match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            text(column, row)?.map(|s| Value::String(s.to_owned()))
        }
        DataType::Boolean => Some(Value::Bool(column.as_boolean().value(row))),
        DataType::Int8 => Some(column.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Some(column.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Some(column.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Some(column.as_primitive::<Int64Type>().value(row).into()),
        DataType::UInt8 => Some(column.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Some(column.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Some(column.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => Some(column.as_primitive::<UInt64Type>().value(row).into()),
        DataType::Float32 => {
            let shortest = column.as_primitive::<Float32Type>().value(row).to_string();
            shortest.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
        }
        DataType::Float64 => {
            serde_json::Number::from_f64(column.as_primitive::<Float64Type>().value(row)).map(Value::Number)
        }
        DataType::Timestamp(unit, _) => {
            let (value, per_second) = match unit {
                TimeUnit::Second => (column.as_primitive::<TimestampSecondType>().value(row), 1),
                TimeUnit::Millisecond => {
                    (column.as_primitive::<TimestampMillisecondType>().value(row), 1_000)
                }
                TimeUnit::Microsecond => {
                    (column.as_primitive::<TimestampMicrosecondType>().value(row), 1_000_000)
                }
                TimeUnit::Nanosecond => {
                    (column.as_primitive::<TimestampNanosecondType>().value(row), 1_000_000_000)
                }
            };
            Some(Value::String(rfc3339(value, per_second)))
        }
        DataType::Date32 => {
            let days = i64::from(column.as_primitive::<arrow_array::types::Date32Type>().value(row));
            Some(Value::String(rfc3339(days * 86_400, 1)[..10].to_owned()))
        }
        other => {
            return Err(format!("{other}; filters and sorts use strings, numbers, booleans and timestamps"));
        }
    };
    Ok(value)
}

/// `value` ticks of `1/per_second` s since 1970 as `YYYY-MM-DDTHH:MM:SS[.fff]Z`, with
/// as many fraction digits as the unit has, and none when the fraction is zero.
fn rfc3339(value: i64, per_second: i64) -> String {
    let (seconds, ticks) = (value.div_euclid(per_second), value.rem_euclid(per_second));
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days: proleptic Gregorian, any year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (second_of_day / 3600, second_of_day % 3600 / 60, second_of_day % 60);
    let mut text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    if ticks != 0 {
        let digits = per_second.ilog10() as usize;
        let _ = write!(text, ".{ticks:0digits$}");
    }
    text.push('Z');
    text
}

/// The x/y extent of a WKB (ISO or EWKB) geometry's coordinates, `None` when it is not
/// WKB or has no finite coordinate.
fn wkb_extent(bytes: &[u8]) -> Option<[f64; 4]> {
    let mut wkb =
        Wkb { bytes, at: 0, extent: [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY] };
    wkb.geometry(0)?;
    let [w, s, e, n] = wkb.extent;
    (w <= e && s <= n).then_some(wkb.extent)
}

/// A cursor over WKB bytes that widens `extent` with every point it reads.
struct Wkb<'a> {
    bytes: &'a [u8],
    at: usize,
    extent: [f64; 4],
}

impl Wkb<'_> {
    /// Collections nest at most this deep.
    const MAX_DEPTH: u32 = 16;

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let out = self.bytes.get(self.at..self.at + N)?.try_into().ok()?;
        self.at += N;
        Some(out)
    }

    fn count(&mut self, little: bool) -> Option<usize> {
        let raw = self.take::<4>()?;
        Some(if little { u32::from_le_bytes(raw) } else { u32::from_be_bytes(raw) } as usize)
    }

    fn geometry(&mut self, depth: u32) -> Option<()> {
        if depth > Self::MAX_DEPTH {
            return None;
        }
        let little = match self.take::<1>()? {
            [1] => true,
            [0] => false,
            _ => return None,
        };
        let code = self.count(little)? as u32;
        // EWKB flags in the high bits; ISO codes add 1000 (Z), 2000 (M), 3000 (ZM).
        let (z_flag, m_flag, srid) =
            (code & 0x8000_0000 != 0, code & 0x4000_0000 != 0, code & 0x2000_0000 != 0);
        let (kind, iso) = ((code & 0x0FFF_FFFF) % 1000, (code & 0x0FFF_FFFF) / 1000);
        let dims =
            2 + usize::from(z_flag || iso == 1 || iso == 3) + usize::from(m_flag || iso == 2 || iso == 3);
        if srid {
            self.take::<4>()?;
        }
        match kind {
            1 => self.points(1, dims, little),
            2 => {
                let n = self.count(little)?;
                self.points(n, dims, little)
            }
            3 => {
                for _ in 0..self.count(little)? {
                    let n = self.count(little)?;
                    self.points(n, dims, little)?;
                }
                Some(())
            }
            4..=7 => {
                for _ in 0..self.count(little)? {
                    self.geometry(depth + 1)?;
                }
                Some(())
            }
            _ => None,
        }
    }

    fn points(&mut self, n: usize, dims: usize, little: bool) -> Option<()> {
        let size = n.checked_mul(dims * 8)?;
        if self.bytes.len() - self.at < size {
            return None;
        }
        for _ in 0..n {
            let mut ordinate = || {
                let raw = self.take::<8>()?;
                Some(if little { f64::from_le_bytes(raw) } else { f64::from_be_bytes(raw) })
            };
            let (x, y) = (ordinate()?, ordinate()?);
            for _ in 2..dims {
                ordinate()?;
            }
            // An empty point is NaN, NaN.
            if x.is_finite() && y.is_finite() {
                let e = &mut self.extent;
                *e = [e[0].min(x), e[1].min(y), e[2].max(x), e[3].max(y)];
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests;
