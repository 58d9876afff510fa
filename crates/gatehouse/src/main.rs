//! `gatehouse`: the identity-aware access gateway.

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
