//! Per-game launch settings, `<state_dir>/games/<id>/launch.json`: which
//! executable in `local/` starts the game and with which arguments. Created
//! with a guess on install (kept if the user already edited it), removed on
//! uninstall.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable::{remove_file_if_exists, replace_file};

pub const LAUNCH_FILE: &str = "launch.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSettings {
    /// Relative to `local/`.
    pub executable: Option<String>,
    #[serde(default)]
    pub arguments: Vec<String>,
}

pub fn launch_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("games").join(id).join(LAUNCH_FILE)
}

pub fn load(state_dir: &Path, id: &str) -> io::Result<Option<LaunchSettings>> {
    match fs::read(launch_path(state_dir, id)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Writes settings with a guessed executable, unless settings already exist.
pub fn write_default(state_dir: &Path, id: &str, local: &Path) -> io::Result<()> {
    let path = launch_path(state_dir, id);
    if path.exists() {
        return Ok(());
    }
    let settings = LaunchSettings {
        executable: guess_executable(local),
        arguments: Vec::new(),
    };
    fs::create_dir_all(path.parent().unwrap_or(state_dir))?;
    let bytes = serde_json::to_vec_pretty(&settings).map_err(io::Error::other)?;
    replace_file(&path.with_extension("json.tmp"), &path, &bytes)
}

pub fn remove(state_dir: &Path, id: &str) -> io::Result<()> {
    remove_file_if_exists(&launch_path(state_dir, id))
}

/// The first `.exe`, or else the first file with an execute bit, at the top of `local/`.
fn guess_executable(local: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut files: Vec<(String, bool)> = fs::read_dir(local)
        .ok()?
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| {
            let executable = entry.metadata().ok()?.permissions().mode() & 0o111 != 0;
            Some((entry.file_name().into_string().ok()?, executable))
        })
        .collect();
    files.sort();
    let exe = files
        .iter()
        .find(|(name, _)| name.to_ascii_lowercase().ends_with(".exe"));
    exe.or_else(|| files.iter().find(|(_, executable)| *executable))
        .map(|(name, _)| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_guess_the_executable_and_keep_user_edits() {
        let state = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        fs::write(local.path().join("readme.txt"), b"x").unwrap();
        fs::write(local.path().join("Game.EXE"), b"x").unwrap();
        write_default(state.path(), "g", local.path()).unwrap();
        let settings = load(state.path(), "g").unwrap().unwrap();
        assert_eq!(settings.executable.as_deref(), Some("Game.EXE"));

        let edited = LaunchSettings {
            executable: Some("other".into()),
            arguments: vec!["-fullscreen".into()],
        };
        fs::write(launch_path(state.path(), "g"), serde_json::to_vec(&edited).unwrap()).unwrap();
        write_default(state.path(), "g", local.path()).unwrap();
        assert_eq!(load(state.path(), "g").unwrap(), Some(edited));
        remove(state.path(), "g").unwrap();
        assert_eq!(load(state.path(), "g").unwrap(), None);
    }
}
