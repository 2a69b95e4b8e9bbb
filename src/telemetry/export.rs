//! Which OTLP exporters the standard `OTEL_*` variables ask for. Tessera sets no
//! endpoint of its own: with none of them set, nothing is exported and nothing is
//! reported as wrong.
//!
//! - `OTEL_SDK_DISABLED=true` turns everything off: no export, and spans get no
//!   OpenTelemetry ids (no trace ids in logs or passed to workers).
//! - `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER`: `none` turns a signal off; `otlp`
//!   turns it on (at the SDK's default endpoint if none is given); other exporters are
//!   not built in (a warning says so).
//! - Otherwise a signal is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or its per-signal
//!   variant (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._METRICS_ENDPOINT`) is set.
//! - Everything else (headers, timeout, sampler, batch delays, export interval, resource
//!   attributes) is read by the OpenTelemetry SDK and exporter themselves.

use super::Role;

/// What to export, and what in the environment could not be honoured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportPlan {
    /// Export spans over OTLP/gRPC.
    pub traces: bool,
    /// Export metrics over OTLP/gRPC (the front only).
    pub metrics: bool,
    /// `OTEL_SDK_DISABLED=true`: no OpenTelemetry at all, not even trace ids.
    pub sdk_disabled: bool,
    /// Warnings to log once logging is up.
    pub problems: Vec<String>,
}

impl ExportPlan {
    /// The plan for this process's environment.
    #[must_use]
    pub fn from_env(role: Role) -> Self {
        Self::from_lookup(role, |k| std::env::var(k).ok())
    }

    /// The plan for the variables `get` returns (a seam for tests).
    pub fn from_lookup(role: Role, get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut plan = Self::default();
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            plan.sdk_disabled = true;
            return plan;
        }
        if role == Role::Tool {
            return plan;
        }
        let mut signal = |name: &str| -> bool {
            let endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
                .or_else(|| get(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", name.to_uppercase())));
            let exporter_var = format!("OTEL_{}_EXPORTER", name.to_uppercase());
            let on = match get(&exporter_var).map(|v| v.to_ascii_lowercase()) {
                Some(v) if v == "none" => false,
                Some(v) if v.split(',').any(|e| e.trim() == "otlp") => true,
                Some(v) => {
                    plan.problems.push(format!(
                        "{exporter_var}={v} is not supported: Tessera exports {name} over OTLP (otlp) or not at all (none)"
                    ));
                    endpoint.is_some()
                }
                None => endpoint.is_some(),
            };
            if on {
                let protocol = get(&format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", name.to_uppercase()))
                    .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"));
                if let Some(p) = protocol.filter(|p| !p.eq_ignore_ascii_case("grpc")) {
                    plan.problems.push(format!(
                        "OTLP protocol '{p}' is not supported: Tessera exports {name} over OTLP/gRPC; point the endpoint at a gRPC receiver (port 4317 by convention)"
                    ));
                }
            }
            on
        };
        let traces = signal("traces");
        let metrics = role == Role::Front && signal("metrics");
        plan.traces = traces;
        plan.metrics = metrics;
        plan
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn plan(role: Role, vars: &[(&str, &str)]) -> ExportPlan {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ExportPlan::from_lookup(role, |k| vars.get(k).cloned())
    }

    #[test]
    fn nothing_set_exports_nothing_and_complains_about_nothing() {
        assert_eq!(plan(Role::Front, &[]), ExportPlan::default());
        assert_eq!(plan(Role::Front, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]), ExportPlan::default());
    }

    #[test]
    fn an_endpoint_turns_on_traces_and_front_metrics() {
        let front = plan(Role::Front, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        assert!(front.traces && front.metrics && front.problems.is_empty());
        let worker = plan(Role::Worker, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        assert!(worker.traces && !worker.metrics);
        let tool = plan(Role::Tool, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        assert!(!tool.traces && !tool.metrics);
        let only_traces = plan(Role::Front, &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317")]);
        assert!(only_traces.traces && !only_traces.metrics);
    }

    #[test]
    fn exporter_variables_and_sdk_disabled_win() {
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_METRICS_EXPORTER", "none")];
        let p = plan(Role::Front, &vars);
        assert!(p.traces && !p.metrics);
        let p = plan(Role::Front, &[("OTEL_TRACES_EXPORTER", "otlp")]);
        assert!(p.traces && !p.metrics, "otlp without an endpoint uses the SDK default");
        let p = plan(
            Role::Front,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_SDK_DISABLED", "TRUE")],
        );
        assert_eq!(p, ExportPlan { sdk_disabled: true, ..ExportPlan::default() });
    }

    #[test]
    fn unsupported_exporters_and_protocols_are_reported() {
        let p = plan(Role::Front, &[("OTEL_TRACES_EXPORTER", "zipkin")]);
        assert!(!p.traces);
        assert!(p.problems[0].contains("OTEL_TRACES_EXPORTER=zipkin is not supported"), "{:?}", p.problems);
        let p = plan(
            Role::Worker,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        );
        assert!(p.traces);
        assert!(p.problems[0].contains("'http/protobuf' is not supported"), "{:?}", p.problems);
    }
}
