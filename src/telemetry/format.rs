//! Log line formats: JSON lines for the front (`--log-format json`) and the worker's
//! plain lines, which the front parses back ([`WorkerLines::parse`]).
//!
//! Both take the trace and span ids from the active OpenTelemetry context, which
//! `tracing-opentelemetry` activates whenever one of Tessera's spans is entered.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The ids of the active span, if it belongs to a trace.
fn active_ids() -> Option<(String, String)> {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// Collects an event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's
/// fields, `span` (the innermost span's name) and, inside a trace, `trace_id` and
/// `span_id`. An event that carries a `trace_id` field of its own (a forwarded worker
/// line) keeps it.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), span.name().into());
        }
        if let Some((trace_id, span_id)) = active_ids() {
            line.insert("trace_id".into(), trace_id.into());
            line.insert("span_id".into(), span_id.into());
        }
        for (k, v) in fields {
            let key = if matches!(k.as_str(), "timestamp" | "level" | "target" | "span") {
                format!("field.{k}")
            } else {
                k
            };
            line.insert(key, v);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The span fields of [`JsonLines`]: none. A line names only its innermost span, so the
/// copy of every span's fields the log layer would otherwise format at each span's
/// creation and at each `record` (a dozen spans a tile, in text with their values) is
/// never read; it was about 2% of the front's CPU a tile.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(&self, _: Writer<'w>, _: R) -> fmt::Result {
        Ok(())
    }
}

/// The worker's stderr lines: `LEVEL pid=PID [trace_id=ID] message [field=value ...]`.
/// The front parses them back ([`WorkerLines::parse`]) and logs them as its own events.
#[derive(Debug, Clone, Copy)]
pub struct WorkerLines {
    pid: u32,
}

impl WorkerLines {
    /// The format for this process.
    #[must_use]
    pub fn new() -> Self {
        Self { pid: std::process::id() }
    }

    /// Splits a worker line into level, trace id and the rest. A line in another shape
    /// has no level and is the message as a whole.
    #[must_use]
    pub fn parse(line: &str) -> ParsedLine<'_> {
        let whole = ParsedLine { level: None, trace_id: None, message: line };
        let Some((level, rest)) = line.split_once(' ') else { return whole };
        let Ok(level) = level.parse::<tracing::Level>() else { return whole };
        let Some(rest) = rest.strip_prefix("pid=") else { return whole };
        let rest = rest.split_once(' ').map_or("", |(_, r)| r);
        let (trace_id, message) = match rest.strip_prefix("trace_id=") {
            Some(r) => {
                let (id, m) = r.split_once(' ').unwrap_or((r, ""));
                (Some(id), m)
            }
            None => (None, rest),
        };
        ParsedLine { level: Some(level), trace_id, message }
    }
}

impl Default for WorkerLines {
    fn default() -> Self {
        Self::new()
    }
}

/// A worker line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    /// Its level, if the worker wrote it.
    pub level: Option<tracing::Level>,
    /// The trace of the job it is about.
    pub trace_id: Option<&'a str>,
    /// The message and its fields.
    pub message: &'a str,
}

impl<S, N> FormatEvent<S, N> for WorkerLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "{} pid={}", event.metadata().level(), self.pid)?;
        if let Some((trace_id, _)) = active_ids() {
            write!(writer, " trace_id={trace_id}")?;
        }
        writer.write_char(' ')?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_parse_back() {
        let p =
            WorkerLines::parse("WARN pid=42 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 GDAL warning: x y=1");
        assert_eq!(p.level, Some(tracing::Level::WARN));
        assert_eq!(p.trace_id, Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(p.message, "GDAL warning: x y=1");
        let p = WorkerLines::parse("ERROR pid=42 cannot send hello");
        assert_eq!(
            (p.level, p.trace_id, p.message),
            (Some(tracing::Level::ERROR), None, "cannot send hello")
        );
    }

    #[test]
    fn foreign_lines_are_kept_whole() {
        for line in ["thread 'main' panicked at src/x.rs", "ERROR 4: file not found", "", "INFO"] {
            let p = WorkerLines::parse(line);
            assert_eq!((p.level, p.trace_id, p.message), (None, None, line));
        }
    }
}
