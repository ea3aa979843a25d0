//! The `writesync-demo` command: runs the walk-through of [`writesync_demo::demo`] and exits 0
//! only when every check passed (1 otherwise; usage errors exit 2).

use std::process::ExitCode;

use clap::Parser;

/// writesync-demo: the main use cases of writesync, end to end over HTTP on 127.0.0.1, with a
/// server on a temporary database, fake QuickBooks and HubSpot APIs, a fake token broker and a
/// webhook receiver.
#[derive(Debug, Parser)]
#[command(name = "writesync-demo", version, about, long_about = None)]
struct Cli {
    /// Also print the server's JSON log lines on stderr.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if writesync_demo::demo::run(cli.verbose) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
