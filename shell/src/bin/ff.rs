//! The `ff` command.

use ff_engine::store::library::library;

const USAGE: &str = "ff — an execution engine on Valkey / Redis 7+

usage:
  ff version     print the crate version and the function library version
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") => {
            println!(
                "ff {} (function library {})",
                env!("CARGO_PKG_VERSION"),
                library().version
            );
        }
        Some("-h") | Some("--help") | None => print!("{USAGE}"),
        Some(other) => {
            eprintln!("ff: unknown command {other:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}
