//! The `git-push-tracker` binary: parse the command line, set up logging, run, map errors to exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use git_push_tracker::cli::{Cli, LogFormat};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

// One allocator on every target: glibc's malloc made the ingest writer and the async threads
// wait on each other's arena locks (about 12% of ingest throughput), and musl's is slow.
// Cargo.toml builds it without transparent huge pages, which doubled the idle footprint.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 2's `mimalloc.h`, which the Rust bindings do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// By default mimalloc gives freed pages back only when the thread that freed them allocates
/// again 10 ms later, so an idle server kept every page its start and its last burst had freed
/// (about 9 MB of a 28 MB idle footprint), and a thousand live streams kept what their
/// connections' setup had freed. Purging at once costs a system call per freed run of pages;
/// `cargo bench` shows no ingest cost beyond its noise (BENCHMARKS.md). The benchmark sets the
/// same.
fn return_freed_memory_at_once() {
    // SAFETY: sets an integer option, which mimalloc reads atomically; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(git_push_tracker::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A setting that cannot be used is a usage error, like the ones clap reports.
            if e.downcast_ref::<git_push_tracker::config::ConfigError>()
                .is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The log filter when `PUSH_TRACKER_LOG` is unset.
const DEFAULT_LOG_FILTER: &str = "info,poem=warn";

/// Logs go to stderr, so `--json` output on stdout stays one clean document.
fn init_logging(format: LogFormat) {
    let filter = std::env::var("PUSH_TRACKER_LOG")
        .ok()
        .and_then(|value| match value.parse::<Targets>() {
            Ok(filter) => Some(filter),
            Err(e) => {
                eprintln!(
                    "warning: PUSH_TRACKER_LOG={value:?} is not a log filter ({e}); using {DEFAULT_LOG_FILTER:?}"
                );
                None
            }
        })
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.parse().expect("the default filter parses"));
    // Colours only for a person at a terminal, not for journald or a log file.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(logs).init(),
        LogFormat::Json => registry.with(logs.json()).init(),
    }
}
