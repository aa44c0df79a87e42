//! The `portcullis` binary: see the `portcullis_cli` crate docs.

fn main() -> std::process::ExitCode {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let code = portcullis_cli::run(std::env::args_os(), &mut stdin, &mut stdout);
    std::process::ExitCode::from(code)
}
