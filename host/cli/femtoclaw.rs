//! `femtoclaw`: the name the product page gives the command
//! (`femtoclaw run --brain local`). It is `fc-host` under another name:
//! this launcher runs the `fc-host` installed beside it with the same
//! arguments (on Unix it becomes that process, so signals, exit codes and
//! the terminal are `fc-host`'s own). A launcher rather than a second copy
//! keeps one 20-odd MiB binary to build, ship and audit.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(format!("fc-host{}", std::env::consts::EXE_SUFFIX)));
    let Some(fc_host) = beside.filter(|path| path.is_file()) else {
        eprintln!(
            "femtoclaw: fc-host is not installed beside this program; install both (`cargo install --path .` does), or run fc-host directly"
        );
        return ExitCode::from(70);
    };
    let mut command = Command::new(&fc_host);
    command.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        let error = command.arg0("femtoclaw").exec();
        eprintln!("femtoclaw: cannot run `{}`: {error}", fc_host.display());
        ExitCode::from(70)
    }
    #[cfg(not(unix))]
    match command.status() {
        Ok(status) => ExitCode::from(status.code().map_or(70, |c| c as u8)),
        Err(error) => {
            eprintln!("femtoclaw: cannot run `{}`: {error}", fc_host.display());
            ExitCode::from(70)
        }
    }
}
