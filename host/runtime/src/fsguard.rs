//! Only regular files and directories open inside a mount. Opening a FIFO
//! blocks in the kernel until a writer comes, a character device may never
//! end a read, and a capability's file operations run on the run's own
//! thread (`allow_blocking_current_thread`, for speed): one such open would
//! stall the whole run past every deadline. So `open-at` is wrapped: the
//! path is looked at first (without following a final symlink unless the
//! guest asked to), and anything but a regular file, a directory or a
//! symlink is refused with `unsupported` before the OS opens it.
//!
//! Guests cannot create special files (WASI has no `mknod`); a host process
//! that swaps a file for a FIFO between the look and the open is the one
//! gap, and the CLI's watchdog ends such a run at its `run-timeout`.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, DescriptorType, ErrorCode, Host, HostDescriptor, OpenFlags, PathFlags,
};

/// The interface wasmtime-wasi links `open-at` under (its WIT version).
const INTERFACE: &str = "wasi:filesystem/types@0.2.12";

type OpenArgs = (
    Resource<Descriptor>,
    PathFlags,
    String,
    OpenFlags,
    DescriptorFlags,
);

/// Replaces `open-at` in a linker that has WASI p2 in it.
pub(crate) fn guard_open<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut instance = linker.instance(INTERFACE)?;
    instance.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store, (fd, path_flags, path, oflags, flags): OpenArgs| {
            Box::new(async move {
                let mut view = store.data_mut().filesystem();
                let looked = HostDescriptor::stat_at(
                    &mut view,
                    Resource::new_borrow(fd.rep()),
                    path_flags,
                    path.clone(),
                )
                .await;
                if let Ok(stat) = looked
                    && !matches!(
                        stat.type_,
                        DescriptorType::RegularFile
                            | DescriptorType::Directory
                            | DescriptorType::SymbolicLink
                    )
                {
                    tracing::info!(target: "femtoclaw::decision", path = %crate::text::escape(&path), kind = ?stat.type_, decision = "deny", rule = "mounts.special-files", "open of a special file refused");
                    return Ok((Err(ErrorCode::Unsupported),));
                }
                let opened =
                    HostDescriptor::open_at(&mut view, fd, path_flags, path, oflags, flags).await;
                Ok((match opened {
                    Ok(descriptor) => Ok(descriptor),
                    Err(e) => Err(Host::convert_error_code(&mut view, e)?),
                },))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
