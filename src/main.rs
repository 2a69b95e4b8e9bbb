//! The `tessera` binary: `serve`, the hidden `worker`, and the human tools `get`,
//! `info`, `layer build-overview` and `demo-data`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera::{
    client,
    config::ServeArgs,
    demo,
    telemetry::{LogFormat, Role, Telemetry},
};

/// Exit code for a configuration the server cannot run with (EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;

/// The version, and the build's optional features (a release build has none).
const VERSION: &str = match (cfg!(feature = "test-hooks"), cfg!(feature = "tools")) {
    (true, true) => concat!(env!("CARGO_PKG_VERSION"), " (features: test-hooks, tools)"),
    (true, false) => concat!(env!("CARGO_PKG_VERSION"), " (features: test-hooks)"),
    (false, true) => concat!(env!("CARGO_PKG_VERSION"), " (features: tools)"),
    (false, false) => concat!(env!("CARGO_PKG_VERSION"), " (features: none)"),
};

#[derive(Debug, Parser)]
#[command(name = "tessera", version = VERSION, about = "Map tiles on the fly from Cloud-Optimized GeoTIFFs, over gRPC")]
struct Cli {
    /// Log lines as human-readable text or one JSON object per line (with trace_id and
    /// span_id); the filter is RUST_LOG [default: text].
    #[arg(long, global = true, env = "TESSERA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the tile API.
    Serve(Box<ServeArgs>),
    /// A GDAL worker process (spawned by `serve`; not for direct use).
    #[command(hide = true)]
    Worker(tessera::ipc::limits::WorkerLimits),
    /// Fetch one tile from a running server and write it to a file.
    Get(client::GetArgs),
    /// Describe an asset served by a running server.
    Info(client::InfoArgs),
    /// Work on a server-side layer through a running server (`layer build-overview`).
    Layer(client::LayerArgs),
    /// Write a small deterministic set of demo COGs into DIR.
    DemoData {
        /// Target directory (created if missing).
        dir: std::path::PathBuf,
    },
    /// Benchmark a server over the demo data (see docs/operations.md; built with `--features tools`).
    #[cfg(feature = "tools")]
    Bench(tessera::client::BenchArgs),
    /// Long chaos run: tiles under random worker kills and stops (see docs/operations.md;
    /// built with `--features tools`).
    #[cfg(feature = "tools")]
    Chaos(tessera::client::ChaosArgs),
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // The worker sets up its own stdio before anything else; no tokio, no logging.
        Command::Worker(limits) => tessera::worker::run(&limits),
        Command::Serve(args) => {
            let config = match args.resolve() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tessera serve: {e}");
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
            };
            if !tessera::server::allocator::keep_freed_memory() {
                eprintln!("tessera serve: malloc did not take its thresholds; going on with its defaults");
            }
            // The front's runtime: `--runtime-threads` (config/server.rs); the client
            // commands keep tokio's default.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.server.runtime_threads)
                .enable_all()
                .build()
                .map_err(anyhow::Error::from);
            report(rt.and_then(|rt| {
                // The OTLP exporter's channel is bound to the runtime it is built in.
                let mut telemetry = rt.block_on(async { Telemetry::init(Role::Front, cli.log_format) });
                let served = rt.block_on(tessera::server::serve(config));
                // Still inside the runtime's lifetime: the last spans need its I/O to leave.
                telemetry.shutdown();
                Ok(served?)
            }))
        }
        Command::Get(args) => client_exit(runtime().map(|rt| rt.block_on(client::get(args)))),
        Command::Info(args) => client_exit(runtime().map(|rt| rt.block_on(client::info(args)))),
        Command::Layer(client::LayerArgs { command: client::LayerCommand::BuildOverview(args) }) => {
            client_exit(runtime().map(|rt| rt.block_on(client::build_overview(args))))
        }
        #[cfg(feature = "tools")]
        Command::Chaos(args) => {
            let _telemetry = Telemetry::init(Role::Tool, cli.log_format);
            report(runtime().and_then(|rt| Ok(rt.block_on(client::chaos(args))?)))
        }
        #[cfg(feature = "tools")]
        Command::Bench(args) => {
            let _telemetry = Telemetry::init(Role::Tool, cli.log_format);
            // Against a running server, the load generator is one thread: its calls are
            // futures of one task, and more threads only add hand-offs to every call
            // (0.32 -> 0.20 ms of CPU a tile, one tile at a time) and take CPU from the
            // server measured. Its other modes (the floor, the STAC layer, a server of its
            // own) keep the usual runtime.
            let rt = if args.server.is_some() {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
            } else {
                runtime()
            };
            report(rt.and_then(|rt| Ok(rt.block_on(client::bench(args))?)))
        }
        Command::DemoData { dir } => report(demo::write_demo_data(&dir).map_err(anyhow::Error::from)),
    }
}

/// The exit of `tessera get` / `tessera info`: the message, and a code that says what
/// went wrong (see [`client::ClientError::exit_code`]).
fn client_exit(result: anyhow::Result<Result<(), client::ClientError>>) -> ExitCode {
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("tessera: {e}");
            // A connection error's own text is terse ("transport error"); its causes say why.
            if let client::ClientError::Connect { source, .. } = &e {
                let mut cause = std::error::Error::source(source);
                while let Some(c) = cause {
                    eprintln!("  because: {c}");
                    cause = c.source();
                }
            }
            ExitCode::from(e.exit_code())
        }
        Err(e) => report(Err(e)),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e:#}");
            ExitCode::FAILURE
        }
    }
}
