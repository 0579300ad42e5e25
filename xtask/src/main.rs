//! `cargo xtask <task>`: Hangar's development tasks.
//!
//! - `fixture-image [--tag NAME:TAG]`: builds `hangar-fixture` statically
//!   linked (`-C target-feature=+crt-static`, `--target
//!   x86_64-unknown-linux-gnu`, release, in `target/static`) and imports it
//!   into the Docker engine at `DOCKER_HOST` as an image holding nothing but
//!   the binary (the equivalent of `FROM scratch`): `hangar-fixture:dev` by
//!   default. No registry is needed: the image is made from a tarball.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::TryStreamExt;

const TARGET: &str = "x86_64-unknown-linux-gnu";
const DEFAULT_TAG: &str = "hangar-fixture:dev";

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask fixture-image [--tag NAME:TAG]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fixture-image") => {
            let tag = match args.get(1..) {
                Some([flag, tag]) if flag == "--tag" => tag.clone(),
                Some([]) | None => DEFAULT_TAG.to_owned(),
                Some(_) => return usage(),
            };
            match fixture_image(&tag).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtask fixture-image: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Builds the static fixture and imports it as `tag`.
async fn fixture_image(tag: &str) -> Result<(), String> {
    let root = workspace_root();
    let target_dir = root.join("target").join("static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("building a static hangar-fixture ({TARGET}, release)");
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            "hangar-fixture",
        ])
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        // With an explicit --target, RUSTFLAGS reach the target's crates
        // only, not build scripts and proc macros (which must stay dynamic).
        .env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C strip=symbols",
        )
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    let binary = target_dir
        .join(TARGET)
        .join("release")
        .join("hangar-fixture");
    let bytes = std::fs::read(&binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let rootfs = rootfs_tar(&bytes).map_err(|e| format!("building the image tarball: {e}"))?;
    let (repo, version) = tag.split_once(':').unwrap_or((tag, "latest"));
    let docker = Docker::connect_with_defaults()
        .map_err(|e| format!("docker engine: {e}"))?
        .negotiate_version()
        .await
        .map_err(|e| format!("docker engine: {e}"))?;
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(version)
        .changes(vec![r#"ENTRYPOINT ["/hangar-fixture"]"#.to_owned()])
        .build();
    let mut import = std::pin::pin!(docker.create_image(
        Some(options),
        Some(bollard::body_full(bytes::Bytes::from(rootfs))),
        None,
    ));
    while import
        .try_next()
        .await
        .map_err(|e| format!("importing the image: {e}"))?
        .is_some()
    {}
    eprintln!(
        "imported {tag} ({} bytes of static binary, nothing else)",
        bytes.len()
    );
    Ok(())
}

/// A root file system of the binary and an empty `/tmp` (a mount point).
fn rootfs_tar(binary: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o1777);
    dir.set_size(0);
    dir.set_mtime(0);
    tar.append_data(&mut dir, "tmp/", std::io::empty())?;
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o755);
    file.set_size(binary.len() as u64);
    file.set_mtime(0);
    tar.append_data(&mut file, "hangar-fixture", binary)?;
    tar.into_inner()
}
