//! The `roam` command: one module per subcommand (`connect`, `serve`, `demo`, `import`).

mod connect;
mod demo;
mod import;
mod logging;
mod memory;
mod serve;
mod signals;
mod weak;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Roam, an IKEv2/IPsec VPN client.
#[derive(Parser, Debug)]
#[command(name = "roam", version, about)]
struct Cli {
    /// Log level on stderr (default: warn, or RUST_LOG when set).
    #[arg(long, value_enum, global = true, value_name = "LEVEL")]
    log_level: Option<logging::Level>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect to the server a profile names; prints one line per state change.
    Connect(connect::Args),
    /// Run Roam's responder as a road-warrior server on a TUN (needs root or CAP_NET_ADMIN).
    Serve(serve::Args),
    /// Run Roam's responder and a client on loopback: handshake and traffic (no root, no server).
    Demo(demo::Args),
    /// Turn a strongSwan .sswan or an Apple .mobileconfig into a profile (TOML on stdout).
    Import(import::Args),
}

fn main() -> ExitCode {
    memory::map_big_allocations();
    let cli = Cli::parse();
    logging::init(cli.log_level);
    // Each command's `run` keeps its own stack frame (`#[inline(never)]` there): inlined here,
    // the largest of them set the stack every command touches.
    match cli.command {
        Command::Connect(args) => connect::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Import(args) => import::run(&args),
    }
}
